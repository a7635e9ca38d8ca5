"""Tests of relevance mass, pointing game and deletion/insertion curves by hand."""

import cv2
import numpy as np
import pytest

from drscreen.evaluation import heatmap_quality


def test_relevance_mass_by_hand():
    """|H| in FOV: 1 + 2 + 3 (the -4 is outside); in the mask: 2 + 3, so 5/6."""
    heatmap = np.array([[1.0, -2.0], [3.0, -4.0]])
    mask = np.array([[0, 1], [1, 1]])
    fov = np.array([[1, 1], [1, 0]], bool)
    assert heatmap_quality.relevance_mass(heatmap, mask, fov) == pytest.approx(5 / 6)


def test_pointing_game_tolerance():
    """The maximum at (1, 1) is one pixel from the lesion at (1, 2): a miss at 0, hit at 1."""
    heatmap = np.zeros((5, 5))
    heatmap[1, 1] = 1.0
    mask = np.zeros((5, 5), np.uint8)
    mask[1, 2] = 1
    assert not heatmap_quality.pointing_game(heatmap, mask, tolerance_px=0)
    assert heatmap_quality.pointing_game(heatmap, mask, tolerance_px=1)


def test_pointing_game_ignores_maximum_outside_fov():
    """The global maximum outside the FOV does not point; the one inside hits the lesion."""
    heatmap = np.zeros((5, 5))
    heatmap[0, 0], heatmap[3, 3] = 5.0, 1.0
    mask = np.zeros((5, 5), np.uint8)
    mask[3, 3] = 1
    fov = np.ones((5, 5), bool)
    fov[0, 0] = False
    assert heatmap_quality.pointing_game(heatmap, mask, fov, tolerance_px=0)


def test_deletion_insertion_by_hand():
    """Image [[1, 2], [3, 4]], ranking 2, 3, 4, 1, mean baseline 2.5, score = pixel sum.

    Deletion replaces the top k pixels by 2.5: sums 10, 10.5, 10, 8.5, 10 (area 9.75);
    insertion restores them into the baseline: 10, 9.5, 10, 11.5, 10 (area 10.25).
    """
    image = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    heatmap = np.array([[[0.1, 0.4], [0.3, 0.2]]])
    config = heatmap_quality.PerturbationConfig(steps=4, baseline="mean")
    curves = heatmap_quality.perturbation_curves(
        image, heatmap, lambda x: x.sum(axis=(1, 2, 3)), config
    )
    np.testing.assert_allclose(curves.fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curves.deletion, [[10, 10.5, 10, 8.5, 10]])
    np.testing.assert_allclose(curves.insertion, [[10, 9.5, 10, 11.5, 10]])
    np.testing.assert_allclose(curves.deletion_auc, [9.75])
    np.testing.assert_allclose(curves.insertion_auc, [10.25])


def test_blur_baseline_keeps_a_constant_image():
    """Blurring a constant image leaves it unchanged (3 channels kept)."""
    images = np.full((2, 16, 16, 3), 7.0, np.float32)
    config = heatmap_quality.PerturbationConfig(baseline="blur", blur_sigma=2.0)
    np.testing.assert_allclose(heatmap_quality.baseline_images(images, config), images, rtol=1e-6)


def test_score_fn_returning_wrong_count_is_reported():
    """A score function returning one score for two images is refused."""
    images = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="score_fn returned 1 scores for 2 images"):
        heatmap_quality.perturbation_curves(images, np.zeros((2, 4, 4)), lambda x: np.zeros(1))


def test_pointing_game_zero_heatmap_is_a_miss():
    """An all-zero heatmap has no maximum to point with: a miss even on a lesion at pixel 0."""
    mask = np.zeros((5, 5), np.uint8)
    mask[0, 0] = 1
    assert not heatmap_quality.pointing_game(np.zeros((5, 5)), mask, tolerance_px=1)


def test_pointing_game_negative_heatmap_is_a_miss():
    """No positive relevance in the FOV (only negative values): a miss."""
    heatmap = -np.ones((5, 5))
    heatmap[2, 2] = -0.5
    mask = np.zeros((5, 5), np.uint8)
    mask[2, 2] = 1
    assert not heatmap_quality.pointing_game(heatmap, mask, tolerance_px=0)


def test_peaks_score_many_masks_like_a_brute_force_search():
    """Mass and pointing game of random masks against one summary equal a direct search:
    a hit when some tied maximum and some lesion pixel differ by an offset of the disc."""
    rng = np.random.default_rng(5)
    heatmap = rng.integers(0, 40, (12, 12)).astype(np.float64)  # a few tied maxima
    fov = np.ones((12, 12), bool)
    fov[:, :2] = False
    peaks = heatmap_quality.heatmap_peaks(heatmap, fov, tolerance_px=2)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    offsets = [(dy - 2, dx - 2) for dy, dx in zip(*np.nonzero(disc), strict=True)]
    maxima = list(zip(*np.nonzero((heatmap == heatmap[fov].max()) & fov), strict=True))
    outcomes = set()
    for _ in range(20):
        mask = rng.random((12, 12)) < 0.01
        lesion = set(zip(*np.nonzero(mask), strict=True))
        hit = any((y + dy, x + dx) in lesion for y, x in maxima for dy, dx in offsets)
        assert peaks.pointing_game(mask) == hit
        outcomes.add(hit)
        mass = np.abs(heatmap)[mask & fov].sum() / np.abs(heatmap)[fov].sum()
        assert peaks.relevance_mass(mask) == pytest.approx(mass)
    assert outcomes == {True, False}
