"""Conv2D: forward equals Keras' convolution, untied biases, backward with unknown batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from drscreen.layers.convolution import conv_input_gradient
from tests.layers.battery import BUILDS, assert_close, run_chain


def test_forward_equals_keras_convolution():
    """Same kernel and bias as keras.layers.Conv2D -> same output (stride 2, 'same', 4x4)."""
    ours = layers.Conv2D(5, 4, strides=2)
    reference = keras.layers.Conv2D(5, 4, strides=2, padding="same")
    x = tf.random.stateless_normal((2, 16, 16, 3), seed=(0, 1))
    ours(x)
    reference(x)
    reference.set_weights(ours.get_weights())
    assert_close(ours(x), reference(x))


def test_untied_bias_has_one_value_per_position():
    """'valid' 3x3 stride 2 on 16x16 -> 7x7 outputs, so the bias is (7, 7, filters)."""
    layer = layers.Conv2D(4, 3, strides=2, padding="valid", untied_bias=True)
    layer.build((None, 16, 16, 3))
    assert tuple(layer.bias.shape) == (7, 7, 4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.bias), 0.05)


def test_untied_bias_needs_static_size():
    """An untied bias on inputs of unknown height/width is refused with the reason."""
    with pytest.raises(ValueError, match="static input height and width"):
        layers.Conv2D(4, 3, untied_bias=True)(keras.Input((None, None, 3)))


def test_backward_with_unknown_batch_in_tf_function():
    """Traced once for any batch size, the transposed convolution still equals the tape."""
    layer = layers.Conv2D(3, 5, strides=2, padding="valid")
    layer.build((None, 13, 13, 2))

    @tf.function(input_signature=[tf.TensorSpec((None, 13, 13, 2))])
    def heatmap(x):
        outputs, trace = run_chain([layer], x)
        return backward(trace, tf.ones_like(outputs))

    for batch in (1, 3):
        x = tf.random.stateless_normal((batch, 13, 13, 2), seed=(batch, 0))
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(layer(x))
        assert_close(heatmap(x), tape.gradient(score, x))


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(
    ("kernel", "strides", "size"),
    [(1, 1, 7), (3, 1, 8), (4, 1, 9), (5, 2, 16), (5, 2, 13), (4, 2, 10), (3, 3, 11),
     ((2, 5), (1, 2), 12), ((4, 3), (3, 2), 14)],
)  # fmt: skip
def test_conv_input_gradient_equals_tape(kernel, strides, size, padding):
    """The phase convolution equals TF's input gradient for every kernel/stride/padding shape."""
    layer = layers.Conv2D(3, kernel, strides=strides, padding=padding)
    x = tf.random.stateless_normal((2, size, size + 1, 2), seed=(size, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        seed = tf.random.stateless_normal(tf.shape(y), seed=(1, 2))
        score = tf.reduce_sum(seed * y)
    got = conv_input_gradient(seed, layer.kernel, (size, size + 1), layer.strides, padding)
    assert_close(got, tape.gradient(score, x))


def test_conv_input_gradient_with_unknown_height_and_width():
    """Traced with unknown spatial size, the pads and the crop are computed at run time."""
    layer = layers.Conv2D(2, 5, strides=2)
    layer.build((None, None, None, 3))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3))])
    def gradient(x):
        outputs, trace = run_chain([layer], x)
        return backward(trace, tf.ones_like(outputs))

    for size in (9, 12):
        x = tf.random.stateless_normal((1, size, size + 3, 3), seed=(size, 1))
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(layer(x))
        assert_close(gradient(x), tape.gradient(score, x))


def _adjoint_op_types(channels: int, strides: int) -> set[str]:
    kernel = tf.random.stateless_normal((5, 5, channels, 4), seed=(0, channels))

    @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 4))])
    def adjoint(upstream):
        return conv_input_gradient(upstream, kernel, (16, 16), (strides, strides), "same")

    graph = adjoint.get_concrete_function().graph
    return {op.type for op in graph.get_operations()}


def test_in_process_adjoint_onto_few_channels_is_the_phase_convolution():
    """In-process the strided adjoint onto RGB (oneDNN's Conv2DBackpropInput is slow there) is
    a convolution of the phases; onto more channels it is the fused transposed convolution."""
    assert "Conv2DBackpropInput" not in _adjoint_op_types(3, 2)
    assert "Conv2DBackpropInput" in _adjoint_op_types(8, 2)


@pytest.mark.parametrize("channels", [3, 8])
@pytest.mark.parametrize(("strides", "padding"), [(2, "same"), ((1, 2), "valid"), (3, "same")])
def test_adjoint_second_order_equals_nested_tapes(channels, strides, padding):
    """Heatmap-aware training differentiates the adjoint again: the gradients of a loss on it
    with respect to the upstream signal and the kernel equal those of nested tapes over the
    forward convolution, in-process (fused, or phases with the fused gradient) and portable."""
    layer = layers.Conv2D(5, 4, strides=strides, padding=padding)
    x = tf.random.stateless_normal((2, 13, 14, channels), seed=(channels, 7))
    upstream = tf.random.stateless_normal(tf.shape(layer(x)), seed=(3, 4))
    kernel = tf.convert_to_tensor(layer.kernel)
    weights = tf.random.stateless_normal(tf.shape(x), seed=(5, 6))

    def loss_gradients(adjoint_of):
        with tf.GradientTape() as outer:
            outer.watch([upstream, kernel])
            loss = tf.reduce_sum(tf.square(adjoint_of()) * weights)
        return outer.gradient(loss, [upstream, kernel])

    def nested_tape():
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.nn.conv2d(x, kernel, layer.strides, padding.upper())
        return inner.gradient(y, x, output_gradients=upstream)

    def ours():
        return conv_input_gradient(upstream, kernel, (13, 14), layer.strides, padding)

    expected = loss_gradients(nested_tape)
    for build in BUILDS.values():
        with build():
            got = loss_gradients(ours)
        for value, want in zip(got, expected, strict=True):
            assert_close(value, want)
