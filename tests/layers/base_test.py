"""positive_step: masks from arithmetic equal the comparison they replace, and cut gradients."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.layers.base import positive_step

VALUES = [-np.inf, -3.0, -1.0, -0.5, -0.0, 0.0, 1e-7, 0.25, 1.0, 7.5, 6e4, np.inf]


@pytest.mark.parametrize("low", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_positive_step_is_one_above_zero_and_low_elsewhere(low, dtype):
    """Hand-computed: 1 for every positive value (tiny and huge included), ``low`` otherwise."""
    values = np.array(VALUES, dtype)
    expected = np.where(values > 0, 1.0, np.asarray(low, dtype)).astype(dtype)
    np.testing.assert_array_equal(positive_step(tf.constant(values), low).numpy(), expected)


def test_positive_step_has_no_gradient():
    """A piecewise-constant mask contributes nothing to second-order gradients."""
    x = tf.constant([-1.0, 0.5, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(positive_step(x) * 3.0)
    assert tape.gradient(y, x) is None
