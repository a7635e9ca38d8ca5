"""Dense-head layers: maxout grouping and ties, dropout masks in training, rank checks."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from tests.layers.battery import assert_close, run_chain


def test_maxout_groups_consecutive_units():
    """Units (0, 1) and (2, 3) are the pairs: [1, 5, 3, 2] -> [5, 3]."""
    np.testing.assert_array_equal(layers.Maxout(2)(tf.constant([[1.0, 5, 3, 2]])), [[5, 3]])


def test_maxout_splits_ties_like_reduce_max():
    """A tied pair shares the upstream signal: [3, 3, 1, 2] with upstream 1 -> [.5, .5, 0, 1]."""
    x = tf.constant([[3.0, 3, 1, 2]])
    _, trace = run_chain([layers.Maxout(2)], x)
    np.testing.assert_allclose(backward(trace, tf.ones((1, 2))), [[0.5, 0.5, 0, 1]])


def test_maxout_rejects_indivisible_units():
    """Five units cannot form pairs."""
    with pytest.raises(ValueError, match="not a multiple of pieces=2"):
        layers.Maxout(2)(tf.zeros((1, 5)))


def test_dense_rejects_rank_4_inputs():
    """Dense needs flattened inputs and says so."""
    with pytest.raises(ValueError, match="rank-2"):
        layers.Dense(3)(tf.zeros((1, 2, 2, 3)))


def test_dropout_training_backward_reuses_the_mask():
    """In training mode the backward multiplies by the very mask the forward drew (== tape)."""
    layer = layers.Dropout(0.5, seed=1)
    x = tf.random.stateless_normal((4, 32), seed=(0, 0))
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs, trace = run_chain([layer], x, training=True)
        score = tf.reduce_sum(outputs)
    grad = backward(trace, tf.ones_like(outputs), training=True)
    assert_close(grad, tape.gradient(score, x))
    dropped = grad.numpy() == 0
    assert 0.2 < dropped.mean() < 0.8
    np.testing.assert_array_equal(dropped, outputs.numpy() == 0)


def test_dropout_inference_is_identity_and_training_needs_the_mask():
    """Inference passes inputs and upstream unchanged; a training backward without mask fails."""
    layer = layers.Dropout(0.5)
    x = tf.ones((2, 3))
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(ValueError, match="mask"):
        layer.backward(x, x, x, training=True)
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(1.0)


def test_dense_without_bias_maps_zero_to_zero():
    """use_bias=False: no bias weight, x W exactly (a zero input gives a zero output)."""
    layer = layers.Dense(2, use_bias=False, kernel_initializer="ones")
    x = tf.constant([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(layer(x).numpy(), [[0, 0], [6, 6]])
    assert [w.name for w in layer.weights] == ["kernel"]
