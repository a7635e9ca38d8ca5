"""Input z-scoring with the o_O statistics, Graham's local-average subtraction and
inference-only batch-normalisation backward."""

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


def _in_tf_data(fn, image: np.ndarray) -> tf.Tensor:
    return next(iter(tf.data.Dataset.from_tensors(image).map(fn)))


def _in_unknown_shape_function(fn, image: np.ndarray) -> tf.Tensor:
    return tf.function(fn, input_signature=[tf.TensorSpec([None, None, None, 3])])(image)


@pytest.mark.parametrize(
    "runner",
    [lambda fn, image: fn(image), _in_tf_data, _in_unknown_shape_function],
    ids=["eager", "tf_data", "tf_function"],
)
def test_input_normalization_golden_values(runner):
    """mean + k·std maps to k per channel, eagerly, in tf.data and in a tf.function."""
    # o_O's statistics, written out here.
    mean, std = (108.64628601, 75.86886597, 54.34005737), (70.53946096, 51.71475228, 43.03428563)
    pixel = [mean[0] + std[0], mean[1], mean[2] - 2 * std[2]]
    image = np.tile(np.array(pixel, np.float32), (1, 2, 2, 1))
    result = runner(layers.InputNormalization(), image)
    np.testing.assert_allclose(result.numpy()[0, 0, 0], [1.0, 0.0, -2.0], atol=1e-5)


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


def test_graham_maps_a_constant_image_to_grey():
    """4c - 4 blur(c) + 128 = 128 wherever the kernel (radius 4 at 64 px) misses the border."""
    layer = layers.GrahamNormalization()
    output = layer(tf.fill((1, 64, 64, 3), 77.0)).numpy()
    assert layer.kernel_1d.size == 9  # sigma = 64 / 2 / 30 px, radius ceil(3 sigma) = 4
    np.testing.assert_allclose(output[:, 4:-4, 4:-4], 128.0, atol=1e-4)
    assert np.all(output[:, 0] > 128.0)  # zero padding: the border sees a darker average


def test_graham_matches_opencv_away_from_borders():
    """The layer equals Graham's recipe with cv2.GaussianBlur (sigma = side / 60) inside."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (64, 64, 3)).astype("float32")
    sigma = 64 / 2 / 30
    radius = 4
    blurred = cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigma)
    expected = 4.0 * image - 4.0 * blurred + 128.0
    output = layers.GrahamNormalization()(image[np.newaxis]).numpy()[0]
    inner = (slice(radius, -radius), slice(radius, -radius))
    assert_close(output[inner], expected[inner], rtol=1e-5)


def test_graham_lrp_passes_relevance_through():
    """LRP-epsilon returns the upstream relevance unchanged (conserved per pixel)."""
    x = tf.random.stateless_uniform((1, 16, 16, 3), seed=(3, 3), maxval=255.0)
    relevance = tf.random.stateless_normal((1, 16, 16, 3), seed=(4, 4))
    _, trace = run_chain([layers.GrahamNormalization()], x)
    np.testing.assert_array_equal(backward(trace, relevance, layers.lrp_epsilon(0.01)), relevance)


def test_graham_needs_a_static_image_size():
    """Unknown spatial size and a non-positive sigma are refused by name."""
    with pytest.raises(ValueError, match="static size"):
        layers.GrahamNormalization().build((None, None, None, 3))
    with pytest.raises(ValueError, match="sigma_fraction must be positive"):
        layers.GrahamNormalization(0.0)
