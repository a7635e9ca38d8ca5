"""Test-time augmentation: every view against a hand-rotated numpy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps import compute
from drscreen.heatmaps.tta import DIHEDRAL, FLIPS, VIEWS, check_views, tta_compute, tta_grades
from tests.heatmaps.toy import toy_model

# Each view as numpy applies it to one (H, W[, C]) image, and its inverse.
NUMPY_VIEWS = {
    "identity": (lambda a: a, lambda a: a),
    "flip_left_right": (np.fliplr, np.fliplr),
    "flip_up_down": (np.flipud, np.flipud),
    "rotate_180": (lambda a: np.rot90(a, 2), lambda a: np.rot90(a, -2)),
    "rotate_90": (lambda a: np.rot90(a, 1), lambda a: np.rot90(a, -1)),
    "rotate_270": (lambda a: np.rot90(a, 3), lambda a: np.rot90(a, -3)),
    "transpose": (lambda a: np.swapaxes(a, 0, 1), lambda a: np.swapaxes(a, 0, 1)),
    "transverse": (
        lambda a: np.rot90(np.swapaxes(a, 0, 1), 2), lambda a: np.swapaxes(np.rot90(a, -2), 0, 1)
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(4)
    return toy_model(16)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)


@pytest.mark.parametrize("view", DIHEDRAL)
def test_view_transforms_match_numpy(view):
    """Each transform and its inverse equal numpy's flips/rotations; inverse undoes it."""
    batch = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    forward, inverse = VIEWS[view]
    np_forward, np_inverse = NUMPY_VIEWS[view]
    transformed = forward(tf.constant(batch)).numpy()
    np.testing.assert_array_equal(transformed, np.stack([np_forward(a) for a in batch]))
    np.testing.assert_array_equal(inverse(tf.constant(transformed)).numpy(), batch)
    maps = tf.constant(batch[..., 0])
    np.testing.assert_array_equal(inverse(forward(maps)).numpy(), batch[..., 0])


def test_tta_heatmap_is_the_mean_of_hand_rotated_heatmaps(model, images):
    """Heatmap = mean over views of compute(rotated image) rotated back by numpy; grades per
    view equal the model's grade of the rotated image."""
    grades, heatmap = tta_compute(model, images, views=DIHEDRAL)
    expected_maps, expected_grades = [], []
    for view in DIHEDRAL:
        forward, inverse = NUMPY_VIEWS[view]
        rotated = np.stack([forward(a) for a in images]).copy()
        view_grades, view_maps = compute(model, rotated)
        expected_grades.append(view_grades.numpy())
        expected_maps.append(np.stack([inverse(m) for m in view_maps.numpy()]))
    np.testing.assert_allclose(grades.numpy(), np.stack(expected_grades, axis=1), atol=1e-5)
    np.testing.assert_allclose(heatmap.numpy(), np.mean(expected_maps, axis=0), atol=1e-6)
    assert grades.shape == (2, len(DIHEDRAL))


def test_identity_only_is_compute(model, images):
    grades, heatmap = tta_compute(model, images, views=("identity",))
    plain_grades, plain_heatmap = compute(model, images)
    np.testing.assert_allclose(grades.numpy()[:, 0], plain_grades.numpy(), atol=1e-6)
    np.testing.assert_allclose(heatmap.numpy(), plain_heatmap.numpy(), atol=1e-7)


def test_tta_grades_equal_tta_compute_grades(model, images):
    np.testing.assert_allclose(
        tta_grades(model, images, FLIPS).numpy(), tta_compute(model, images)[0].numpy(), atol=1e-5
    )


def test_bad_view_sets_are_refused():
    for views in ((), ("identity", "identity"), ("spin",)):
        with pytest.raises(ValueError, match="distinct names"):
            check_views(views)
