"""Tests for lesion painters at the frame's edge: masks and windows agree, nothing crashes."""

import numpy as np
import pytest

from drscreen.data.synthetic import lesions
from drscreen.data.synthetic.config import DIFFICULTIES

_SIZE = 64
_PARAMS = DIFFICULTIES["standard"]
_PAINTERS = {
    "microaneurysm": lambda a, x, y, rng: lesions.paint_microaneurysm(a, x, y, rng, _PARAMS, 1.0),
    "blot": lambda a, x, y, rng: lesions.paint_hemorrhage(a, x, y, rng, _PARAMS, 1.0, "blot"),
    "flame": lambda a, x, y, rng: lesions.paint_hemorrhage(a, x, y, rng, _PARAMS, 1.0, "flame"),
    "preretinal": lambda a, x, y, rng: lesions.paint_preretinal_hemorrhage(
        a, x, y, rng, _PARAMS, 1.0
    ),
    "ring": lambda a, x, y, rng: lesions.paint_exudates(a, x, y, rng, _PARAMS, 1.0, ring=True),
    "cotton_wool": lambda a, x, y, rng: lesions.paint_cotton_wool_spot(
        a, x, y, rng, _PARAMS, 1.0, 0.3
    ),
    "neovascularisation": lambda a, x, y, rng: lesions.paint_neovascularisation(
        a, x, y, rng, _PARAMS, 1.0, "elsewhere"
    ),
}


@pytest.mark.parametrize("painter", sorted(_PAINTERS))
@pytest.mark.parametrize("cx, cy", [(-2.0, 30.0), (66.0, 30.0), (30.0, -1.5), (30.0, 65.0)])
def test_lesion_cut_by_the_frame(painter, cx, cy):
    """A lesion centred just past an edge: its mask fits the frame at its origin and only
    the pixels under the window change."""
    albedo = np.full((_SIZE, _SIZE, 3), 0.5, np.float32)
    lesion = _PAINTERS[painter](albedo, cx, cy, np.random.default_rng(0))
    row, col = lesion.origin
    height, width = lesion.mask.shape
    assert 0 <= row and row + height <= _SIZE and 0 <= col and col + width <= _SIZE
    changed = np.zeros((_SIZE, _SIZE), bool)
    changed[row : row + height, col : col + width] = True
    assert np.array_equal(albedo[~changed], np.full((int((~changed).sum()), 3), 0.5, np.float32))


@pytest.mark.parametrize("painter", sorted(_PAINTERS))
def test_lesion_wholly_outside_paints_nothing(painter):
    """A lesion far outside the frame gives an empty mask and leaves the albedo unchanged."""
    albedo = np.full((_SIZE, _SIZE, 3), 0.5, np.float32)
    lesion = _PAINTERS[painter](albedo, -200.0, 30.0, np.random.default_rng(0))
    assert lesion.mask.size == 0 and not lesion.mask.any()
    np.testing.assert_array_equal(albedo, np.full((_SIZE, _SIZE, 3), 0.5, np.float32))
