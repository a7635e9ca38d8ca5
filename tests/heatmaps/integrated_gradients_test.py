"""Tests of integrated gradients: trapezoid weights by hand, completeness, batching."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps.integrated_gradients import integrated_gradients, trapezoid_weights
from tests.heatmaps.toy import toy_model


def test_trapezoid_weights_by_hand():
    """steps=4: h = 1/4, weights h/2, h, h, h, h/2; they sum to 1."""
    np.testing.assert_allclose(trapezoid_weights(4), [0.125, 0.25, 0.25, 0.25, 0.125])
    np.testing.assert_allclose(trapezoid_weights(1), [0.5, 0.5])
    with pytest.raises(ValueError, match="steps >= 1"):
        trapezoid_weights(0)


def test_completeness():
    """Signed attributions sum to f(x) - f(black) for enough steps (1% of the difference)."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)), tf.float32)
    scores, heatmaps = integrated_gradients(
        model, images, steps=256, points_per_batch=64, sign="signed"
    )
    difference = scores - model(tf.zeros_like(images))[:, 0]
    np.testing.assert_allclose(
        tf.reduce_sum(heatmaps, axis=(1, 2)).numpy(),
        difference.numpy(),
        atol=0.01 * float(tf.reduce_max(tf.abs(difference))),
    )


def test_batching_does_not_change_the_result():
    """Path points per batch is a memory knob only; grades equal the plain forward pass."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(4).uniform(0, 255, (2, 16, 16, 3)), tf.float32)
    scores_a, maps_a = integrated_gradients(model, images, steps=6, points_per_batch=1)
    scores_b, maps_b = integrated_gradients(model, images, steps=6, points_per_batch=4)
    np.testing.assert_allclose(maps_a.numpy(), maps_b.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(scores_a.numpy(), model(images)[:, 0].numpy())
    np.testing.assert_array_equal(scores_a.numpy(), scores_b.numpy())


def test_one_step_is_average_of_end_gradients_times_input():
    """steps=1: attribution = x * (g(0) + g(x)) / 2, with g from a tape."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(5).uniform(0, 255, (1, 16, 16, 3)), tf.float32)
    gradients = []
    for point in (tf.zeros_like(images), images):
        with tf.GradientTape() as tape:
            tape.watch(point)
            total = tf.reduce_sum(model(point))
        gradients.append(tape.gradient(total, point).numpy())
    expected = (images.numpy() * (gradients[0] + gradients[1]) / 2).sum(axis=-1)
    _, heatmaps = integrated_gradients(model, images, steps=1, sign="signed")
    np.testing.assert_allclose(heatmaps.numpy(), expected, atol=1e-5 * np.abs(expected).max())
