"""Tests of the grade -> referable-DR probability mapping."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.models.calibration import referable_probability


def test_logistic_values_by_hand():
    """p = 1 / (1 + exp(-(g - 1.5) / 0.25)): 0.5 at the midpoint, e^4 odds one grade away."""
    grades = np.array([1.5, 2.0, 1.0, 2.5])
    logistic = 1 / (1 + np.exp(-np.array([0.0, 2.0, -2.0, 4.0])))  # (g - 1.5) / 0.25
    expected = logistic
    np.testing.assert_allclose(referable_probability(grades), expected, rtol=1e-12)


def test_parameters_shift_and_sharpen():
    """midpoint moves the 0.5 point; scale sets the slope."""
    assert referable_probability(3.0, midpoint=3.0, scale=2.0) == pytest.approx(0.5)
    expected = 1 / (1 + np.exp(-2))  # (4 - 3) / 0.5 = 2
    assert referable_probability(4.0, midpoint=3.0, scale=0.5) == pytest.approx(expected)


def test_tensor_in_tensor_out_inside_tf_function():
    """A tensor gives the same values as numpy, also in graph mode."""
    grades = np.array([0.0, 1.2, 1.8, 4.0], np.float32)
    graph = tf.function(lambda g: referable_probability(g, scale=0.4))
    np.testing.assert_allclose(
        graph(tf.constant(grades)).numpy(), referable_probability(grades, scale=0.4), rtol=1e-6
    )


def test_extreme_grades_do_not_overflow():
    """Saturates to exactly 0 and 1 without warnings."""
    np.testing.assert_array_equal(referable_probability(np.array([-1e4, 1e4])), [0.0, 1.0])


def test_bad_scale():
    """A non-positive scale is rejected by name."""
    with pytest.raises(ValueError, match="scale"):
        referable_probability(1.0, scale=0.0)
