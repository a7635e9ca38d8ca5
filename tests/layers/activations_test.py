"""Activation backward rules on hand-picked values, including the kink at zero."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from tests.layers.battery import BUILDS, run_chain

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
            y = tf.nn.leaky_relu(x, alpha=slope) if slope else tf.nn.relu(x)
        expected = tape.gradient(y, x).numpy()
        np.testing.assert_allclose(_rule(layer, layers.GRADIENT, x, tf.ones((1, 3))), expected)
        np.testing.assert_allclose(expected, np.full((1, 3), slope, "float32"))


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("slope", [0.01, 0.3])
def test_tensorflow_gradient_of_the_layer_is_tensorflows_leaky_relu_gradient(build, slope):
    """In-process the layer's forward carries its own TensorFlow gradient (read off the
    output): first and second order (through the upstream signal, as heatmap-aware training
    differentiates it) equal those of ``tf.nn.leaky_relu``, zeros included."""
    rng = np.random.default_rng(2)
    x = tf.constant(np.concatenate([rng.normal(size=(2, 7)), np.zeros((2, 1))], 1), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 8)), tf.float32)
    weights = tf.constant(rng.normal(size=(2, 8)), tf.float32)
    layer = layers.LeakyReLU(slope)

    def first_and_second(activation):
        with tf.GradientTape() as outer:
            outer.watch(upstream)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = activation(x)
            gradient = inner.gradient(y, x, output_gradients=upstream)
            second_loss = tf.reduce_sum(gradient * weights)
        return gradient, outer.gradient(second_loss, upstream)

    with BUILDS[build]():
        got = first_and_second(layer)
    expected = first_and_second(lambda v: tf.nn.leaky_relu(v, alpha=slope))
    for value, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(value.numpy(), want.numpy(), rtol=1e-6)
    np.testing.assert_allclose(expected[1].numpy(), np.where(x > 0, 1, slope) * weights, rtol=1e-6)


def _through_identities(tensor: tf.Tensor) -> tf.Tensor:
    """The tensor that ``tensor`` passes on unchanged (through StopGradient and IdentityN)."""
    while tensor.op.type in ("StopGradient", "Identity", "IdentityN"):
        tensor = tensor.op.inputs[tensor.value_index if tensor.op.type == "IdentityN" else 0]
    return tensor


def test_training_gradient_reads_the_activation_output():
    """In a traced training gradient of convolution + LeakyReLU, the gradient of the
    activation reads its output, not the convolution's (TensorFlow's registered gradient of
    ``LeakyRelu`` reads the pre-activation, and then Grappler's remapper gives up fusing
    convolution, bias and activation)."""
    convolution, activation = layers.Conv2D(4, 3), layers.LeakyReLU(0.01)
    images = tf.random.stateless_normal((2, 9, 9, 3), seed=(1, 2))
    run_chain([convolution, activation], images)

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(activation(convolution(x))))
        return tape.gradient(loss, convolution.trainable_variables)

    graph = gradient.get_concrete_function(tf.TensorSpec([None, 9, 9, 3])).graph
    (forward,) = [op for op in graph.get_operations() if op.type == "LeakyRelu"]
    (backward_op,) = [op for op in graph.get_operations() if op.type == "LeakyReluGrad"]
    assert _through_identities(backward_op.inputs[1]) is forward.outputs[0]


@pytest.mark.parametrize("slope", [0.0, 0.01])
def test_fused_backward_treats_the_forward_tensors_as_constants(slope):
    """The routing's masks come from the forward tensors, whose derivative is zero almost
    everywhere: differentiating the fused backward sends nothing back through the forward
    pass (no tensor of zeros for heatmap-aware training to carry), only through upstream."""
    layer = layers.LeakyReLU(slope)
    x = tf.constant(X)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, UPSTREAM])
        output, trace = run_chain([layer], x)
        tape.watch(output)
        gradient = backward(trace, UPSTREAM)
    assert tape.gradient(gradient, [x, output]) == [None, None]
    np.testing.assert_allclose(tape.gradient(gradient, UPSTREAM), [[slope, slope, 1, 1]], rtol=1e-6)


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
