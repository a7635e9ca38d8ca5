"""Tests of heatmap overlays: robust normalisation by hand, blending, saving."""

import cv2
import numpy as np
import pytest

from drscreen.heatmaps.overlay import (
    heatmap_on_photograph,
    heatmap_overlay,
    normalize_heatmap,
    photograph_panel,
    save_overlay,
)


def test_normalize_by_percentile_inside_fov():
    """|H| / percentile of the positive in-FOV values, clipped; outside the FOV 0.

    In-FOV positive values 1..4 -> 50th percentile 2.5; -5 is outside the FOV.
    """
    heatmap = np.array([[1.0, -2.0], [3.0, 4.0], [0.0, -5.0]])
    fov = np.array([[1, 1], [1, 1], [1, 0]])
    expected = np.array([[0.4, 0.8], [1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize_heatmap(heatmap, fov, percentile=50), expected)
    np.testing.assert_array_equal(normalize_heatmap(np.zeros((2, 2))), np.zeros((2, 2)))


def test_overlay_blends_where_the_heatmap_is_high():
    """Zero heatmap keeps the photograph; the peak gets alpha x colormap top (inferno's
    top colour is (252, 255, 164)); the heatmap is resized to the image."""
    image = np.full((8, 8, 3), 100, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    result = heatmap_overlay(image, np.zeros((4, 4)), alpha=0.5)
    np.testing.assert_array_equal(result, image)
    result = heatmap_overlay(image, np.full((8, 8), 2.0), alpha=0.5)
    top = np.array([252, 255, 164])
    np.testing.assert_allclose(result[0, 0], np.rint(0.5 * 100 + 0.5 * top), atol=1)
    assert heatmap_overlay(image, heatmap).shape == (8, 8, 3)


def test_overlay_rejects_bad_inputs():
    """Non-uint8 images, non-2-D heatmaps and bad alpha are named."""
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8 RGB"):
        heatmap_overlay(image.astype(np.float32), np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"heatmap must be \(H, W\)"):
        heatmap_overlay(image, np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(image, np.zeros((8, 8)), alpha=2.0)


def test_save_overlay_writes_rgb_png(tmp_path):
    """The PNG on disk decodes (BGR) to the overlay's RGB."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    heatmap = rng.uniform(0, 1, (16, 16))
    path = str(tmp_path / "sub" / "x_heatmap.png")
    save_overlay(path, image, heatmap)
    written = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, heatmap_overlay(image, heatmap))


def test_heatmap_maps_back_to_the_square_it_was_cropped_from():
    """A hot cell of a 16x16 heatmap of the square (top -40, left 100, side 320) of a 300x500
    photograph lands on the photograph at top + side * (row + 0.5) / 16, left + ..."""
    heatmap = np.zeros((16, 16))
    heatmap[10, 4] = 1.0
    photo = np.full((300, 500, 3), 90, np.uint8)
    _, strength = heatmap_on_photograph(photo, heatmap, (-40, 100, 320))
    assert strength.shape == (300, 500)
    row, col = np.unravel_index(np.argmax(strength), strength.shape)
    assert abs(row - (-40 + 320 * 10.5 / 16)) <= 10 and abs(col - (100 + 320 * 4.5 / 16)) <= 10
    assert strength[:, :100].max() == 0 and strength[:, 420:].max() == 0


def test_panel_is_readable_for_huge_photographs_and_keeps_small_ones():
    """An 8000x6000 photograph is shown at 1024 px; a 300 px one at its own size; the panel
    holds the plain photograph, the overlay and a colour scale."""
    heatmap = np.random.default_rng(0).uniform(size=(32, 32))
    huge = np.zeros((6000, 8000, 3), np.uint8)
    panel = photograph_panel(huge, heatmap, (0, 1000, 6000))
    assert panel.shape[0] == 768 and panel.shape[1] > 2 * 1024
    small = np.full((300, 300, 3), 120, np.uint8)
    panel = photograph_panel(small, heatmap, (0, 0, 300))
    assert panel.shape[0] == 300
    np.testing.assert_array_equal(panel[:, :300], small)  # the plain photograph, untouched
    assert np.abs(panel[:, 308:608].astype(int) - 120).max() > 50  # the heatmap blended in
