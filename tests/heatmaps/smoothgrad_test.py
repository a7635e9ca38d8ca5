"""Tests of SmoothGrad: seeded stateless noise, sigma = 0, and the average by hand."""

import numpy as np
import tensorflow as tf

from drscreen.heatmaps.sensitivity import sensitivity
from drscreen.heatmaps.smoothgrad import noisy_copies, smoothgrad
from tests.heatmaps.toy import toy_model


def test_noise_is_deterministic_and_scaled():
    """Same seed, same noise; another seed differs; std ~ sigma * 255 (4000 values)."""
    images = tf.fill((2, 20, 20, 5), 100.0)
    first = noisy_copies(images, 5, 0.1, seed=7)
    second = noisy_copies(images, 5, 0.1, seed=7)
    other = noisy_copies(images, 5, 0.1, seed=8)
    assert first.shape == (10, 20, 20, 5)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert not np.allclose(first.numpy(), other.numpy())
    assert abs(float(tf.math.reduce_std(first)) - 25.5) < 1.0
    assert abs(float(tf.reduce_mean(first)) - 100.0) < 1.0


def test_sigma_zero_equals_sensitivity():
    """Without noise every copy has the sensitivity map, so does their mean."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(6).uniform(0, 255, (2, 16, 16, 3)), tf.float32)
    scores, heatmaps = smoothgrad(model, images, samples=5, sigma=0.0, samples_per_batch=2)
    expected_scores, expected = sensitivity(model, images)
    np.testing.assert_allclose(scores.numpy(), expected_scores.numpy(), rtol=1e-6)
    np.testing.assert_allclose(heatmaps.numpy(), expected.numpy(), rtol=1e-5, atol=1e-8)


def test_mean_of_noisy_sensitivity_maps():
    """Equals the numpy mean of the tape's sum_c |g| over the same noisy copies."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(7).uniform(0, 255, (2, 16, 16, 3)), tf.float32)
    copies = noisy_copies(images, 3, 0.2, seed=11, chunk=0)
    with tf.GradientTape() as tape:
        tape.watch(copies)
        total = tf.reduce_sum(model(copies))
    maps = np.abs(tape.gradient(total, copies).numpy()).sum(axis=-1).reshape(3, 2, 16, 16)
    _, heatmaps = smoothgrad(model, images, samples=3, sigma=0.2, seed=11, samples_per_batch=3)
    expected = maps.mean(axis=0)
    np.testing.assert_allclose(heatmaps.numpy(), expected, atol=1e-5 * expected.max())
