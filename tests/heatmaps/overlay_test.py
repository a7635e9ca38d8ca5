"""Tests of heatmap overlays: robust normalisation by hand, blending, saving."""

import cv2
import numpy as np
import pytest

from drscreen.heatmaps.overlay import (
    CANDIDATE_COLOUR,
    LESION_COLOUR,
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
    _, strength = heatmap_on_photograph(photo, heatmap, (-40, 100, 320), min_side=1)
    assert strength.shape == (300, 500)
    row, col = np.unravel_index(np.argmax(strength), strength.shape)
    assert abs(row - (-40 + 320 * 10.5 / 16)) <= 10 and abs(col - (100 + 320 * 4.5 / 16)) <= 10
    assert strength[:, :100].max() == 0 and strength[:, 420:].max() == 0


def test_panel_is_readable_for_huge_and_small_photographs():
    """An 8000x6000 photograph is shown at 1024 px; a 600 px one at its own size; a 128 px
    one enlarged 4x pixel by pixel to 512 px; the panel holds the plain photograph, the
    overlay and a colour scale."""
    heatmap = np.random.default_rng(0).uniform(size=(32, 32))
    huge = np.zeros((6000, 8000, 3), np.uint8)
    panel = photograph_panel(huge, heatmap, (0, 1000, 6000))
    assert panel.shape[0] == 768 and panel.shape[1] > 2 * 1024
    medium = np.full((600, 600, 3), 120, np.uint8)
    panel = photograph_panel(medium, heatmap, (0, 0, 600))
    assert panel.shape[0] == 600
    np.testing.assert_array_equal(panel[:, :600], medium)  # the plain photograph, untouched
    assert np.abs(panel[:, 608:1208].astype(int) - 120).max() > 50  # the heatmap blended in
    small = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    panel = photograph_panel(small, heatmap, (0, 0, 128))
    assert panel.shape[0] == 512
    np.testing.assert_array_equal(panel[:, :512], small.repeat(4, axis=0).repeat(4, axis=1))


def test_candidates_are_ringed_where_they_sit_on_the_photograph():
    """A candidate at crop cell (10, 4) of a 16x16 heatmap of the square (top -40, left 100,
    side 320) is ringed at (top + 20 * 10.5, left + 20 * 4.5) on the overlay, in cyan; no
    cyan anywhere else but its number; the plain photograph is untouched."""
    heatmap = np.zeros((16, 16))
    heatmap[10, 4] = 1.0
    photo = np.full((300, 500, 3), 90, np.uint8)
    panel = photograph_panel(
        photo, heatmap, (-40, 100, 320), candidates=np.array([[10, 4]]), min_side=1
    )
    centre_row, centre_col = round(-40 + 20 * 10.5), round(100 + 20 * 4.5)  # 170, 190
    radius = 4 * 20
    overlay = panel[:, 500 + 8 : 2 * 500 + 8]
    rows, cols = np.nonzero(np.all(overlay == CANDIDATE_COLOUR, axis=-1))
    distance = np.hypot(rows - centre_row, cols - centre_col)
    ring = np.abs(distance - radius) <= 8
    assert ring.sum() > 100  # the ring is drawn ...
    label = (cols >= centre_col + radius - 4) & (rows <= centre_row - radius + 4)
    assert np.all(ring | label)  # ... and nothing else but its number "1"
    assert np.all(overlay[:5, :5] == 90)  # the photograph away from the marks is untouched
    np.testing.assert_array_equal(panel[:, :500], photo)


def test_lesion_mask_is_outlined_on_the_photograph():
    """A 4x4 lesion block of a 16x16 crop mapped to side 320 at (0, 0) is outlined in
    magenta around rows/cols 80..160 of the photograph."""
    heatmap = np.ones((16, 16))
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    photo = np.full((320, 320, 3), 90, np.uint8)
    panel = photograph_panel(photo, heatmap, (0, 0, 320), lesion_mask=mask, min_side=1)
    np.testing.assert_array_equal(panel[:, :320], photo)
    rows, cols = np.nonzero(np.all(panel[:, 328:648] == LESION_COLOUR, axis=-1))
    assert rows.size > 200
    assert rows.min() >= 78 and rows.max() <= 161 and cols.min() >= 78 and cols.max() <= 161
    inside = panel[100:140, 428:468]
    assert not np.any(np.all(inside == LESION_COLOUR, axis=-1))  # an outline, not a fill


def test_panel_refuses_masks_of_another_size():
    with pytest.raises(ValueError, match="lesion_mask shape"):
        photograph_panel(
            np.zeros((64, 64, 3), np.uint8), np.ones((16, 16)), (0, 0, 64),
            lesion_mask=np.ones((8, 8)),
        )  # fmt: skip
