"""Activation backward rules on hand-picked values, including the kink at zero."""

import numpy as np
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from tests.layers.battery import run_chain

X = tf.constant([[-2.0, 0.0, 3.0, 4.0]])
UPSTREAM = tf.constant([[1.0, 1.0, -1.0, 2.0]])


def _rule(layer, rule, x=X, upstream=UPSTREAM):
    _, trace = run_chain([layer], x)
    return backward(trace, upstream, rule).numpy()


def test_leaky_relu_rules_by_hand():
    """slope 0.1: gradient (0.1, 0.1, -1, 2); guided zeroes upstream < 0; deconvnet relu(up)."""
    layer = layers.LeakyReLU(0.1)
    np.testing.assert_allclose(_rule(layer, layers.GRADIENT), [[0.1, 0.1, -1, 2]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.GUIDED), [[0.1, 0.1, 0, 2]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.DECONVNET), [[1, 1, 0, 2]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.lrp_epsilon()), UPSTREAM.numpy())


def test_slope_at_zero_matches_tensorflow():
    """At x == 0 the derivative is the slope, as LeakyReluGrad (x > 0) and ReluGrad give."""
    x = tf.zeros((1, 3))
    for slope in (0.0, 0.01):
        layer = layers.LeakyReLU(slope)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        expected = tape.gradient(y, x).numpy()
        np.testing.assert_allclose(_rule(layer, layers.GRADIENT, x, tf.ones((1, 3))), expected)
        np.testing.assert_allclose(expected, np.full((1, 3), slope, "float32"))


def test_sigmoid_rules():
    """Sigmoid: s (1 - s) for gradient, guided and deconvnet; LRP passes relevance through."""
    s = 1 / (1 + np.exp(-X.numpy()))
    for rule in (layers.GRADIENT, layers.GUIDED, layers.DECONVNET):
        got = _rule(layers.Sigmoid(), rule)
        np.testing.assert_allclose(got, UPSTREAM.numpy() * s * (1 - s), rtol=1e-6)
    np.testing.assert_allclose(_rule(layers.Sigmoid(), layers.lrp_epsilon()), UPSTREAM.numpy())


def test_squared_relu_rules_by_hand():
    """relu(x)² at (-2, 0, 3, 4): gradient 2·relu(x)·up = (0, 0, -6, 16); guided zeroes the
    negative product; deconvnet relu(upstream); LRP passes relevance through."""
    layer = layers.SquaredReLU()
    np.testing.assert_allclose(layer(X).numpy(), [[0, 0, 9, 16]])
    np.testing.assert_allclose(_rule(layer, layers.GRADIENT), [[0, 0, -6, 16]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.GUIDED), [[0, 0, 0, 16]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.DECONVNET), [[1, 1, 0, 2]], rtol=1e-6)
    np.testing.assert_allclose(_rule(layer, layers.lrp_epsilon()), UPSTREAM.numpy())
