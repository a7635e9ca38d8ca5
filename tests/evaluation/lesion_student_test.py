"""The lesion student's map as a heatmap function, and the probable lesions it rings."""

import keras
import numpy as np
import tensorflow as tf

from drscreen.evaluation.lesion_student import lesion_function, probable_lesions
from drscreen.models import build
from drscreen.models.segmentation import segmentation_net


def test_lesion_function_returns_the_models_grades_and_the_masked_student_map():
    """Grades are the screening model's; the map is the student's channel times the FOV."""
    keras.utils.set_random_seed(0)
    model = build("small", input_size=64, width=2)
    student = segmentation_net(64, 1, width=2)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    fov = np.zeros((2, 64, 64), np.float32)
    fov[:, 4:56, 6:60] = 1
    grades, maps = lesion_function(model, student)(tf.constant(images), tf.constant(fov))
    np.testing.assert_allclose(grades.numpy(), model.predict(images, verbose=0)[:, 0], rtol=1e-5)
    expected = student.predict(images, verbose=0)[..., 0] * fov
    np.testing.assert_allclose(maps.numpy(), expected, atol=1e-6)
    assert np.abs(expected[0] - expected[1]).max() > 1e-3


def test_probable_lesions_are_peaks_of_at_least_one_half_strongest_first():
    """Peaks 0.9, 0.6, 0.5 are ringed in that order; 0.45 and one outside the FOV are not; a
    saturated 5x5 blob is one ring, at its centre."""
    probability = np.full((20, 20), 0.1, np.float32)
    for (row, column), value in {
        (3, 3): 0.6,
        (10, 10): 0.9,
        (16, 4): 0.45,
        (4, 15): 0.5,
        (18, 18): 0.99,
    }.items():
        probability[row, column] = value
    fov = np.ones((20, 20), bool)
    fov[17:, 17:] = False
    marks = probable_lesions(probability, fov)
    np.testing.assert_array_equal(marks, [[10, 10], [3, 3], [4, 15]])
    blob = np.full((96, 96), 0.05, np.float32)
    blob[40:45, 60:65] = 0.99
    np.testing.assert_array_equal(probable_lesions(blob), [[42, 62]])
    assert probable_lesions(np.full((8, 8), 0.3, np.float32)).shape == (0, 2)
    assert len(probable_lesions(probability, fov, count=2)) == 2
