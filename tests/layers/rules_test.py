"""Backward rules: validation, and every rule against hand-computed values on a toy network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import input_gradient
from drscreen.layers.base import lrp_ratio

# Toy network on a 1x1 "image" with 2 channels, x = (1, 2):
#   hidden z = x W + b with W = [[1, 1, 1], [1, -2, 0]], b = (0, 1, 0)
#     z = (1 + 2, 1 - 4 + 1, 1) = (3, -2, 1);  ReLU: a = (3, 0, 1)
#   output y = a V + c with V = (2, 1, -3), c = 0.5:  y = 6 + 0 - 3 + 0.5 = 3.5
X = np.array([[[[1.0, 2.0]]]], "float32")
W = np.array([[1.0, 1.0, 1.0], [1.0, -2.0, 0.0]], "float32")
B = np.array([0.0, 1.0, 0.0], "float32")
V = np.array([[2.0], [1.0], [-3.0]], "float32")
C = np.array([0.5], "float32")


def _toy_network() -> keras.Sequential:
    model = keras.Sequential(
        [
            keras.Input((1, 1, 2)),
            layers.Conv2D(3, 1),
            layers.LeakyReLU(0.0),
            layers.Conv2D(1, 1),
            layers.Flatten(),
        ]
    )
    model.layers[0].set_weights([W.reshape(1, 1, 2, 3), B])
    model.layers[2].set_weights([V.reshape(1, 1, 3, 1), C])
    return model


def _heatmap(rule: layers.BackwardRule) -> np.ndarray:
    outputs, heatmap = input_gradient(_toy_network(), X, rule)
    np.testing.assert_allclose(outputs.numpy(), [[3.5]], rtol=1e-6)
    return heatmap.numpy().reshape(2)


def test_gradient_by_hand():
    """Gradient: upstream at a = V = (2, 1, -3); ReLU' = (1, 0, 1) -> (2, 0, -3); W (2, 0, -3)."""
    np.testing.assert_allclose(_heatmap(layers.GRADIENT), [2 - 3, 2], rtol=1e-6)


def test_guided_by_hand():
    """Guided: the negative upstream -3 is zeroed too -> (2, 0, 0); W (2, 0, 0) = (2, 2)."""
    np.testing.assert_allclose(_heatmap(layers.GUIDED), [2, 2], rtol=1e-6)


def test_deconvnet_by_hand():
    """Deconvnet: relu(upstream) = (2, 1, 0) ignoring z1 < 0; W (2, 1, 0) = (2 + 1, 2 - 2)."""
    np.testing.assert_allclose(_heatmap(layers.DECONVNET), [3, 0], atol=1e-6)


def test_lrp_epsilon_by_hand():
    """LRP-eps (eps = 0.01, seed 1): output z = 3.5, so R_a = a * V / 3.51 = (6, 0, -3) / 3.51.

    Hidden z = (3, -2, 1): s = R_a / (z + 0.01 sign z) = (6 / 3.51 / 3.01, 0, -3 / 3.51 / 1.01);
    R_x = x * (W s) = (1 * (s0 + s1 + s2), 2 * (s0 - 2 s1)).
    """
    s0, s2 = 6 / 3.51 / 3.01, -3 / 3.51 / 1.01
    np.testing.assert_allclose(_heatmap(layers.lrp_epsilon(0.01)), [s0 + s2, 2 * s0], rtol=1e-5)


def test_lrp_ratio_treats_sign_of_zero_as_positive():
    """R / (z + eps sign z) with sign(0) = +1: (1/0.5, 1/2.5, 1/-2.5)."""
    ratio = lrp_ratio(tf.ones(3), tf.constant([0.0, 2.0, -2.0]), 0.5)
    np.testing.assert_allclose(ratio.numpy(), [2.0, 0.4, -0.4], rtol=1e-6)


def test_rule_constants():
    """The constants carry their names; lrp_epsilon carries its epsilon."""
    assert [layers.GRADIENT.name, layers.GUIDED.name, layers.DECONVNET.name] == list(
        layers.RULE_NAMES[:3]
    )
    assert layers.lrp_epsilon(0.25) == layers.BackwardRule("lrp_epsilon", 0.25)
    assert layers.lrp_epsilon().is_lrp and not layers.GUIDED.is_lrp


@pytest.mark.parametrize(
    ("name", "epsilon", "message"),
    [("smoothgrad", 1e-6, "not one of"), ("lrp_epsilon", 0.0, "epsilon must be > 0")],
)
def test_bad_rule_rejected(name, epsilon, message):
    """Unknown rule names and non-positive epsilons are refused with a clear message."""
    with pytest.raises(ValueError, match=message):
        layers.BackwardRule(name, epsilon)
