"""Tests of the o_O augmentation: transform geometry by hand, determinism, colour noise."""

import math

import numpy as np
import pytest
import tensorflow as tf

from drscreen.data import augment
from drscreen.data.augment import AugmentConfig

OFF = AugmentConfig(zoom=False, rotation=False, translation=False, flip=False, color_noise=False)


def _image(height: int = 8, width: int = 8, channels: int = 3) -> np.ndarray:
    return np.arange(height * width * channels, dtype=np.float32).reshape(height, width, channels)


def _transform(image, **params):
    values = dict(zoom_x=1.0, zoom_y=1.0, angle=0.0, shift_x=0.0, shift_y=0.0, flip=False)
    values.update(params)
    matrix = augment.transform_matrix(**values, height=image.shape[0], width=image.shape[1])
    return augment.apply_transform(image, matrix).numpy()


def test_identity_parameters_give_identity():
    """Zoom 1, angle 0, no shift, no flip leaves the image unchanged."""
    image = _image(6, 9)
    np.testing.assert_array_equal(_transform(image), image)


def test_rotation_by_quarter_turn_matches_numpy():
    """A rotation by pi/2 (y axis down) is numpy's clockwise rot90."""
    image = _image()
    np.testing.assert_allclose(_transform(image, angle=math.pi / 2), np.rot90(image, -1), atol=1e-3)


def test_flip_and_shift_match_numpy():
    """Flip mirrors columns; a one-pixel shift moves content right and fills black."""
    image = _image()
    np.testing.assert_array_equal(_transform(image, flip=True), image[:, ::-1])
    shifted = _transform(image, shift_x=1.0)
    np.testing.assert_array_equal(shifted[:, 1:], image[:, :-1])
    np.testing.assert_array_equal(shifted[:, 0], 0.0)


def test_zoom_two_magnifies_about_centre():
    """Zoom 2 on a 4-pixel-wide ramp samples half-way between pixels around the centre."""
    ramp = np.tile(np.arange(4, dtype=np.float32)[None, :, None], (4, 1, 1))
    zoomed = _transform(ramp, zoom_x=2.0, zoom_y=2.0)
    # Output column x samples input column 1.5 + (x - 1.5) / 2.
    np.testing.assert_allclose(zoomed[1], np.array([[0.75], [1.25], [1.75], [2.25]]), atol=1e-5)


def test_pca_color_shift_golden():
    """Shift = U·(c·λ)·std, computed with numpy."""
    coefficients = np.array([0.5, -1.0, 2.0], np.float32)
    u = np.array(augment.PCA_EIGENVECTORS)
    o_o_std = (70.53946096, 51.71475228, 43.03428563)  # drscreen.layers.normalization.OO_STD
    expected = u @ (coefficients * np.array(augment.PCA_EIGENVALUES)) * np.array(o_o_std)
    np.testing.assert_allclose(augment.pca_color_shift(coefficients).numpy(), expected, rtol=1e-5)


def test_augment_is_deterministic_per_seed_and_in_tf_data():
    """Equal seeds give equal images, eagerly and in tf.data; other seeds differ."""
    image = np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    config = AugmentConfig()
    seed = tf.constant([3, 7], tf.int64)
    first = augment.augment_image(image, seed, config).numpy()
    second = augment.augment_image(image, seed, config).numpy()
    in_data = next(
        iter(
            tf.data.Dataset.from_tensors(image).map(
                lambda x: augment.augment_image(x, seed, config)
            )
        )
    ).numpy()
    other = augment.augment_image(image, tf.constant([3, 8], tf.int64), config).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(in_data, first, atol=1e-4)
    assert np.abs(other - first).mean() > 1.0
    assert first.min() >= 0.0 and first.max() <= 255.0


def test_everything_off_is_identity():
    """With every part switched off, augmentation returns the input."""
    image = _image(5, 7)
    result = augment.augment_image(image, tf.constant([1, 2]), OFF).numpy()
    np.testing.assert_array_equal(result, image)


def test_sampled_parameters_stay_in_ranges():
    """Zoom in [1/1.15, 1.15], shifts within 40/512 of the side, angles in [0, 2 pi)."""
    config = AugmentConfig()
    for i in range(50):
        params = augment.sample_parameters(tf.constant([0, i]), config, 64, 128)
        for key in ("zoom_x", "zoom_y"):
            assert 1 / 1.15 - 1e-6 <= float(params[key]) <= 1.15 + 1e-6
        assert abs(float(params["shift_x"])) <= 40 / 512 * 128 + 1e-5
        assert abs(float(params["shift_y"])) <= 40 / 512 * 64 + 1e-5
        assert 0.0 <= float(params["angle"]) < 2 * math.pi


def test_no_stretch_ties_zooms():
    """stretch=False draws one zoom for both axes."""
    params = augment.sample_parameters(tf.constant([0, 1]), AugmentConfig(stretch=False), 8, 8)
    assert float(params["zoom_x"]) == float(params["zoom_y"])


def test_config_validation():
    """Bad ranges are refused with the field named."""
    with pytest.raises(ValueError, match="zoom_range"):
        AugmentConfig(zoom_range=(1.2, 1.1))
    with pytest.raises(ValueError, match="color_sigma"):
        AugmentConfig(color_sigma=-1.0)


def test_dihedral_augmentation_is_one_of_the_eight_symmetries():
    """DIHEDRAL maps an image to one of its 8 flips/quarter turns exactly, and all 8 occur."""
    image = _image(6, 6)
    symmetries = [np.rot90(np.fliplr(image) if f else image, k) for f in (0, 1) for k in range(4)]
    seen = set()
    for i in range(64):
        result = augment.augment_image(image, tf.constant([5, i]), augment.DIHEDRAL).numpy()
        matches = [j for j, s in enumerate(symmetries) if np.array_equal(result, s)]
        assert len(matches) == 1, i
        seen.add(matches[0])
    assert seen == set(range(8))
