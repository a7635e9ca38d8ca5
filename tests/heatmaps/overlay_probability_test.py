"""A probability map is drawn on a fixed scale (``top``), not relative to its own values."""

import numpy as np

from drscreen.heatmaps.overlay import normalize_heatmap, photograph_panel


def test_a_fixed_top_keeps_low_probabilities_faint():
    """With top=1 a probability of 0.1 stays 0.1; the percentile scale makes a map of 0.1
    everywhere 1."""
    probability = np.full((4, 4), 0.1)
    probability[0, 0] = 0.6
    fov = np.ones((4, 4), bool)
    fov[3, 3] = False
    expected = np.where(fov, probability, 0.0)
    np.testing.assert_allclose(normalize_heatmap(probability, fov, top=1.0), expected)
    np.testing.assert_allclose(normalize_heatmap(probability * 3, fov, top=2.0)[0, 0], 0.9)
    assert normalize_heatmap(np.full((4, 4), 0.1), fov)[1, 1] == 1.0


def test_the_panel_of_a_probability_differs_from_a_relative_one():
    """Same map, top=1 or the percentile: the overlays differ, the photographs do not."""
    photograph = np.full((64, 64, 3), 120, np.uint8)
    probability = np.full((64, 64), 0.1, np.float32)
    fixed = photograph_panel(photograph, probability, (0, 0, 64), top=1.0)
    relative = photograph_panel(photograph, probability, (0, 0, 64))
    assert fixed.shape == relative.shape
    np.testing.assert_array_equal(fixed[:, :512], relative[:, :512])
    assert np.abs(fixed[:, 520:1032].astype(int) - relative[:, 520:1032]).max() > 50
