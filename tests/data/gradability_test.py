"""Measured image quality: hand-computed figures of simple images, and the same in tf.data."""

import math

import numpy as np
import pytest
import tensorflow as tf

from drscreen.data.gradability import ANALYSIS_SIZE, FEATURE_NAMES, gradability_features

S = ANALYSIS_SIZE


def _disc(size: int = S, radius: float | None = None) -> np.ndarray:
    centre = (size - 1) / 2
    ys, xs = np.mgrid[:size, :size]
    r = np.hypot(ys - centre, xs - centre)
    return (r <= (size / 2 if radius is None else radius)).astype(np.float32)


def _features(images: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    values = gradability_features(images, masks).numpy()
    assert values.shape == (len(images), len(FEATURE_NAMES))
    return dict(zip(FEATURE_NAMES, values.T, strict=True))


def test_uniform_disc_has_hand_computed_figures():
    """A flat (R, G, B) disc: no detail, no shadow, its own colour ratios."""
    red, green, blue = 200.0, 100.0, 40.0
    mask = _disc()
    image = np.zeros((1, S, S, 3), np.float32)
    image[0][mask > 0] = (red, green, blue)
    f = _features(image, mask[None])
    np.testing.assert_allclose(f["field_coverage"], mask.mean() / (math.pi / 4), rtol=1e-5)
    assert abs(f["field_coverage"][0] - 1.0) < 0.02
    assert f["outside_disc"][0] < 0.05
    np.testing.assert_allclose(f["brightness"], red / 255, rtol=1e-4)
    assert f["dark_fraction"][0] < 1e-6 and f["saturated_fraction"][0] < 1e-6
    np.testing.assert_allclose(f["fine_detail"], math.log(1e-3), atol=1e-3)
    np.testing.assert_allclose(f["detail_direction"], 0.0, atol=1e-3)
    np.testing.assert_allclose(f["contrast"], math.sqrt(1e-3) / (green + 1), rtol=1e-2)
    np.testing.assert_allclose(f["saturation"], (red - blue) / (red + 1), rtol=1e-4)
    np.testing.assert_allclose(f["redness"], (red - blue) / (red + 1), rtol=1e-4)
    np.testing.assert_allclose(f["green_to_red"], green / (red + 1), rtol=1e-4)
    np.testing.assert_allclose(f["rim_to_centre"], red / (red + 1), rtol=1e-4)
    np.testing.assert_allclose(f["darkest_side"], red / (red + 1), rtol=1e-4)


def test_cut_field_shadow_and_detail_move_their_figures():
    """A field cut by the frame, a dark upper side, and fine texture each show up."""
    rng = np.random.default_rng(0)
    mask = _disc()
    flat = np.zeros((S, S, 3), np.float32)
    flat[mask > 0] = (180.0, 90.0, 30.0)
    textured = flat + (rng.normal(0, 20, (S, S, 1)) * mask[..., None]).astype(np.float32)
    shadowed = flat.copy()
    shadowed[: S // 4] *= 0.1
    cut = mask.copy()
    cut[:, : S // 3] = 0
    images = np.stack([flat, textured, shadowed, flat * cut[..., None]])
    masks = np.stack([mask, mask, mask, cut])
    f = _features(images, masks)
    assert f["fine_detail"][1] > f["fine_detail"][0] + 3
    assert f["darkest_side"][2] < 0.2 < 0.9 < f["darkest_side"][0]
    assert f["dark_fraction"][2] > 0.05
    expected_coverage = cut.mean() / (math.pi / 4)
    np.testing.assert_allclose(f["field_coverage"][3], expected_coverage, rtol=1e-5)
    assert f["field_coverage"][3] < 0.8


@pytest.mark.parametrize("size", [64, 256])
def test_other_input_sizes_are_brought_to_the_analysis_size(size):
    """A uniform disc gives the same figures at 64 and 256 px as at 128 px."""

    def flat(side):
        mask = _disc(side)
        image = np.zeros((1, side, side, 3), np.float32)
        image[0][mask > 0] = (150.0, 80.0, 30.0)
        return gradability_features(image, mask[None]).numpy()

    np.testing.assert_allclose(flat(size), flat(S), atol=0.03)


def test_same_in_tf_data_and_tf_function():
    """Eager, inside tf.data.map and inside a tf.function give the same figures."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    masks = np.stack([_disc(64)] * 2)
    eager = gradability_features(images, masks).numpy()
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)
    mapped = next(iter(dataset.map(gradability_features))).numpy()
    traced = tf.function(gradability_features)(images, masks).numpy()
    np.testing.assert_allclose(mapped, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-6)


def test_refuses_non_square_input():
    with pytest.raises(ValueError, match="expected \\(N, S, S, 3\\)"):
        gradability_features(np.zeros((1, 32, 48, 3), np.float32), np.zeros((1, 32, 48)))
