"""Tests of gradient x input and of the attribution -> heatmap reduction."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps.gradient_input import attribution_map, gradient_input
from tests.heatmaps.toy import toy_model

ATTRIBUTION = np.array([[[[1.0, -3.0, 0.5], [2.0, 1.0, 0.0]]]], np.float32)  # sums -1.5, 3


@pytest.mark.parametrize(
    ("sign", "expected"),
    [("absolute", [1.5, 3.0]), ("positive", [0.0, 3.0]), ("signed", [-1.5, 3.0])],
)
def test_attribution_map_by_hand(sign, expected):
    """Channels are summed first, then the sign option applies."""
    result = attribution_map(tf.constant(ATTRIBUTION), sign)
    np.testing.assert_allclose(result.numpy(), [[expected]])


def test_attribution_map_rejects_unknown_sign():
    """An unknown sign lists the valid ones."""
    with pytest.raises(ValueError, match="'absolute', 'positive', 'signed'"):
        attribution_map(tf.constant(ATTRIBUTION), "negative")


def test_gradient_input_equals_numpy_product_of_tape_gradient():
    """Signed map = sum_c (tape gradient * image), computed with numpy."""
    model = toy_model()
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(model(x))
    expected = (tape.gradient(total, x).numpy() * images).sum(axis=-1)
    _, heatmaps = gradient_input(model, x, sign="signed")
    np.testing.assert_allclose(heatmaps.numpy(), expected, atol=1e-5 * np.abs(expected).max())
