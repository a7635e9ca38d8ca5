"""Input z-scoring with the o_O statistics and inference-only batch-normalisation backward."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from tests.layers.battery import assert_close, run_chain


def test_input_normalization_uses_oo_statistics():
    """A pixel at the mean maps to 0 and one at mean + std to 1, per channel."""
    mean, std = np.array(layers.OO_MEAN), np.array(layers.OO_STD)
    np.testing.assert_allclose(mean, [108.65, 75.87, 54.34], atol=0.01)
    np.testing.assert_allclose(std, [70.54, 51.71, 43.03], atol=0.01)
    x = tf.constant(np.stack([mean, mean + std]).reshape(1, 1, 2, 3).astype("float32"))
    np.testing.assert_allclose(
        layers.InputNormalization()(x).numpy().reshape(2, 3), [[0] * 3, [1] * 3], atol=1e-5
    )


def test_input_normalization_rejects_mismatched_channels():
    """Four-channel inputs against three-channel statistics fail naming both counts."""
    with pytest.raises(ValueError, match="4 channels"):
        layers.InputNormalization()(tf.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="std must be positive"):
        layers.InputNormalization((0.0,), (0.0,))


def _batch_norm_with_statistics() -> layers.BatchNormalization:
    layer = layers.BatchNormalization()
    layer.build((None, 4, 4, 3))
    rng = np.random.default_rng(0)
    layer.set_weights(
        [rng.normal(size=3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)]
    )
    return layer


def test_batch_norm_inference_backward_matches_tape():
    """With non-trivial moving statistics the inference backward equals tf.GradientTape."""
    layer = _batch_norm_with_statistics()
    x = tf.random.stateless_normal((2, 4, 4, 3), seed=(1, 1))
    seed = tf.random.stateless_normal((2, 4, 4, 3), seed=(2, 2))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(seed * layer(x))
    _, trace = run_chain([layer], x)
    assert_close(backward(trace, seed), tape.gradient(score, x))


def test_batch_norm_training_backward_is_refused():
    """Training mode updates the moving mean but its backward raises NotImplementedError."""
    layer = _batch_norm_with_statistics()
    before = keras.ops.convert_to_numpy(layer.moving_mean).copy()
    x = tf.random.stateless_normal((2, 4, 4, 3), seed=(1, 1))
    _, trace = run_chain([layer], x, training=True)
    assert not np.array_equal(keras.ops.convert_to_numpy(layer.moving_mean), before)
    with pytest.raises(NotImplementedError, match="training"):
        backward(trace, tf.ones_like(x), training=True)
