"""The backward engine: exactness vs tf.GradientTape, second order, chains and input checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import (
    Trace,
    backward,
    forward,
    input_gradient,
    validate_images,
)
from drscreen.layers.chain import chain_layers
from tests.layers.battery import assert_close

SHAPE = (24, 24, 3)


def _small_oo_layers() -> list[layers.BackpropLayer]:
    """A miniature o_O network: untied convs, leaky ReLU, 3/2 max pools, RMS pool, maxout."""
    return [
        layers.InputNormalization(),
        layers.Conv2D(4, 5, strides=2, untied_bias=True),
        layers.LeakyReLU(),
        layers.MaxPooling2D(3, 2),
        layers.Conv2D(6, 3, untied_bias=True, name="last_conv"),
        layers.LeakyReLU(),
        layers.RMSPooling2D(3, 2),
        layers.Flatten(),
        layers.Dropout(0.5, seed=0),
        layers.Dense(8),
        layers.Maxout(2),
        layers.Dense(2),
    ]


def _sequential() -> keras.Sequential:
    return keras.Sequential([keras.Input(SHAPE), *_small_oo_layers()])


def _functional() -> keras.Model:
    inputs = keras.Input(SHAPE)
    x = inputs
    for layer in _small_oo_layers():
        x = layer(x)
    return keras.Model(inputs, x)


def _images(batch: int = 2, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(batch, *SHAPE)).astype("float32")
    images[:, :6, :6, :] = 0.0  # black background: pooling ties
    return tf.constant(images)


def _tape_input_gradient(model, images, output_index=0, training=False):
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs, trace = forward(model, images, training)
        score = tf.reduce_sum(outputs[:, output_index])
    return outputs, trace, tape.gradient(score, images)


@pytest.mark.parametrize("make", [_sequential, _functional], ids=["sequential", "functional"])
@pytest.mark.parametrize("output_index", [0, 1])
def test_input_gradient_equals_tape(make, output_index):
    """input_gradient == tf.GradientTape for both outputs of Sequential and functional chains."""
    model = make()
    images = _images()
    _, _, expected = _tape_input_gradient(model, images, output_index)
    outputs, grad = input_gradient(model, images, output_index=output_index)
    assert_close(outputs, model(images))
    assert_close(grad, expected)


def test_training_mode_backward_equals_tape():
    """With dropout active, the engine reuses the stored mask and still equals the tape."""
    model = _sequential()
    images = _images()
    outputs, trace, expected = _tape_input_gradient(model, images, training=True)
    seed = tf.one_hot([0, 0], 2)
    assert_close(backward(trace, seed, training=True), expected)


def test_stop_at_gives_gradient_wrt_that_layers_output():
    """stop_at='last_conv' == d(score)/d(last_conv output) (Grad-CAM's gradient)."""
    model = _sequential()
    images = _images()
    with tf.GradientTape() as tape:
        outputs, trace = forward(model, images)
        feature_map = trace.output_of("last_conv")
        score = tf.reduce_sum(outputs[:, 1])
    expected = tape.gradient(score, feature_map)
    got = backward(trace, tf.one_hot([1, 1], 2), stop_at="last_conv")
    assert_close(got, expected)
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        backward(trace, tf.ones_like(outputs), stop_at="conv9")


def test_second_order_equals_nested_tapes():
    """d(mean |heatmap|)/d(weights) through the engine == through nested tf.GradientTapes."""
    model = _sequential()
    images = _images()
    weights = [w.value for w in model.trainable_weights]
    with tf.GradientTape() as outer:
        _, heatmap = input_gradient(model, images)
        loss = tf.reduce_mean(tf.abs(heatmap))
    ours = outer.gradient(loss, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    with tf.GradientTape() as outer:
        _, _, heatmap = _tape_input_gradient(model, images)
        loss = tf.reduce_mean(tf.abs(heatmap))
    expected = outer.gradient(loss, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    kernels = [g for g, w in zip(ours, model.trainable_weights, strict=True) if "kernel" in w.path]
    assert len(kernels) == 4 and all(np.abs(g.numpy()).max() > 0 for g in kernels)
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, rtol=1e-4)


def test_tf_function_with_unknown_batch_equals_eager():
    """One trace with an unknown batch size serves batches of 1 and 3 like eager execution."""
    model = _sequential()
    traced = tf.function(
        lambda images: input_gradient(model, images, layers.lrp_epsilon(0.01)),
        input_signature=[tf.TensorSpec((None, *SHAPE))],
    )
    for batch in (1, 3):
        images = _images(batch, seed=batch)
        eager = input_gradient(model, images, layers.lrp_epsilon(0.01))
        for got, want in zip(traced(images), eager, strict=True):
            assert_close(got, want)


def test_mixed_precision_returns_gradient_in_images_dtype():
    """Under mixed_float16 the output is float16 and the heatmap comes back as float32."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _sequential()
    finally:
        keras.config.set_dtype_policy(previous)
    outputs, grad = input_gradient(model, _images())
    assert outputs.dtype == tf.float16
    assert grad.dtype == tf.float32
    assert np.all(np.isfinite(grad.numpy()))


def test_trace_and_chain_layers_of_nested_models():
    """A Sequential nested in a Sequential is flattened; the trace aligns layers and tensors."""
    inner = keras.Sequential([layers.Conv2D(2, 3), layers.LeakyReLU()], name="inner")
    model = keras.Sequential([keras.Input(SHAPE), layers.InputNormalization(), inner])
    chain = chain_layers(model)
    assert [type(layer) for layer in chain] == [
        layers.InputNormalization,
        layers.Conv2D,
        layers.LeakyReLU,
    ]
    outputs, trace = forward(model, _images())
    assert isinstance(trace, Trace) and len(trace.inputs) == len(trace.outputs) == 3
    assert_close(outputs, model(_images()))


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (np.zeros((1, *SHAPE), "uint8"), TypeError, "floating point"),
        (np.zeros(SHAPE, "float32"), ValueError, "batch, height, width, channels"),
        (np.zeros((1, 24, 24, 1), "float32"), ValueError, "1 channels, the model expects 3"),
        (np.zeros((1, 20, 24, 3), "float32"), ValueError, "height 20, the model expects 24"),
        (np.full((1, *SHAPE), np.nan, "float32"), ValueError, "NaN or infinite"),
    ],
    ids=["uint8", "rank3", "channels", "height", "nan"],
)
def test_bad_images_rejected(images, error, message):
    """Wrong dtype, rank, channels, size or non-finite pixels fail before any layer runs."""
    with pytest.raises(error, match=message):
        input_gradient(_sequential(), images)


def test_finiteness_check_skipped_inside_tf_function():
    """Inside tf.function no assertion op is added (it would not export): NaN flows through."""
    images = tf.constant(np.full((1, *SHAPE), np.nan, "float32"))
    checked = tf.function(validate_images)(images)
    assert np.isnan(checked.numpy()).all()
