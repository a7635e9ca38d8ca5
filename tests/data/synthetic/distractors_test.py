"""Tests for distractor painters at the frame's edge: nothing crashes, nothing outside paints."""

import numpy as np

from drscreen.data.synthetic import distractors
from drscreen.data.synthetic.anatomy import Anatomy, Vessel

_SIZE = 64


def _anatomy(center: tuple[float, float], fovea: tuple[float, float], radius: float) -> Anatomy:
    return Anatomy(_SIZE, "left", center, radius, center, 4.0, fovea)


def _albedo() -> np.ndarray:
    return np.full((_SIZE, _SIZE, 3), 0.5, np.float32)


def test_drusen_and_pigment_beyond_the_frame_leave_it_unchanged():
    """Spots drawn around a point far outside the frame (on each side) paint nothing."""
    for outside in ((-40.0, 30.0), (30.0, -40.0), (104.0, 30.0), (30.0, 104.0)):
        albedo = _albedo()
        anatomy = _anatomy(outside, outside, 4.0)
        rng = np.random.default_rng(0)
        distractors.paint_drusen(albedo, anatomy, rng, 40)
        distractors.paint_pigment(albedo, anatomy, rng, 40)
        np.testing.assert_array_equal(albedo, _albedo())


def test_spots_straddling_the_edge_paint_inside():
    """Drusen centred on the left edge paint the pixels next to it and nothing further: each
    changed pixel moves towards the druse colour (1, 0.85, 0.5) from the albedo 0.5, so red
    rises, green rises 0.35 / 0.5 as much, blue stays."""
    albedo = _albedo()
    distractors.paint_drusen(
        albedo, _anatomy((0.0, 32.0), (0.0, 32.0), 2.0), np.random.default_rng(1), 30
    )
    changed = np.any(albedo != _albedo(), axis=-1)
    rows, columns = np.nonzero(changed)
    assert changed[24:40, 0].any() and columns.max() < 20 and 16 < rows.mean() < 48
    red, green, blue = (albedo[changed][:, c] - 0.5 for c in range(3))
    assert red.min() > 0
    np.testing.assert_allclose(green, 0.7 * red, atol=1e-6)
    assert not blue.any()


def test_reflexes_sheen_and_dust_off_the_frame():
    """Reflexes and sheen on a vessel running outside the frame paint nothing; dust on a
    field of view larger than the frame only darkens, greyly, where its dots reach it."""
    points = np.stack([np.linspace(-60, -20, 20), np.full(20, 30.0)], axis=1).astype(np.float32)
    vessel = Vessel(points, np.full(20, 8.0, np.float32), artery=False)
    anatomy = _anatomy((32.0, 32.0), (32.0, 32.0), 30.0)
    image = _albedo()
    distractors.paint_vessel_reflexes(image, anatomy, [vessel], np.random.default_rng(2), 20)
    distractors.paint_nerve_fibre_sheen(image, anatomy, [vessel], np.random.default_rng(3), 20)
    np.testing.assert_array_equal(image, _albedo())
    distractors.paint_dust(image, np.random.default_rng(4), 200, fov_radius=400.0)
    darkened = image < 0.5
    assert darkened.any() and not darkened.all() and (image <= 0.5).all()
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
        image[..., 1], image[..., 2]
    )
