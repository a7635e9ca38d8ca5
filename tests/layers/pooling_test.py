"""Pooling backward passes on ties, LRP routing and conservation, and argument checks.

Max pooling's backward is checked both ways it is built: TensorFlow's fused ``MaxPoolGrad``
in-process and the rule of forward ops inside `drscreen.layers.portable()` (exports).
"""

import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward
from tests.layers.battery import BUILDS, assert_close, run_chain


def _tape_gradient(layer, x, seed):
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(seed * layer(x))
    return tape.gradient(score, x)


def _backward(layer, x, seed, rule=layers.GRADIENT):
    _, trace = run_chain([layer], x)
    return backward(trace, seed, rule)


@pytest.mark.parametrize(
    ("pool", "strides", "padding"),
    [(3, 2, "valid"), (3, 2, "same"), (2, 2, "valid"), (2, 1, "same")],
)
@pytest.mark.parametrize("build", BUILDS)
def test_max_pooling_ties_match_tensorflow(pool, strides, padding, build):
    """Inputs with constant regions (black background, plateaus): same routing as MaxPoolGrad."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 3, size=(2, 15, 16, 2)).astype("float32")
    values[:, :8, :8, :] = 0.0
    x = tf.constant(values)
    layer = layers.MaxPooling2D(pool, strides, padding)
    seed = tf.constant(rng.normal(size=layer(x).shape).astype("float32"))
    with BUILDS[build]():
        grad = _backward(layer, x, seed)
    assert_close(grad, _tape_gradient(layer, x, seed))


@pytest.mark.parametrize(
    ("pool", "strides", "padding"),
    [((2, 3), (1, 2), "valid"), ((3, 2), (3, 3), "same"), ((1, 3), (2, 1), "valid")],
)
@pytest.mark.parametrize("build", BUILDS)
def test_rectangular_max_pooling_ties_match_tensorflow(pool, strides, padding, build):
    """Row-then-column routing holds for rectangular windows and strides beyond the window."""
    rng = np.random.default_rng(4)
    x = tf.constant(rng.integers(0, 2, size=(2, 11, 13, 3)).astype("float32"))
    layer = layers.MaxPooling2D(pool, strides, padding)
    seed = tf.constant(rng.normal(size=layer(x).shape).astype("float32"))
    with BUILDS[build]():
        grad = _backward(layer, x, seed)
    assert_close(grad, _tape_gradient(layer, x, seed))


@pytest.mark.parametrize(("pool", "strides"), [((2, 3), (1, 2)), (3, 3)])
def test_average_pooling_backward_matches_tensorflow(pool, strides):
    """The separable spread of average pooling equals TensorFlow's gradient."""
    x = tf.random.stateless_normal((2, 11, 13, 3), seed=(9, 9))
    layer = layers.AveragePooling2D(pool, strides)
    seed = tf.random.stateless_normal(layer(x).shape, seed=(9, 10))
    assert_close(_backward(layer, x, seed), _tape_gradient(layer, x, seed))


@pytest.mark.parametrize("build", BUILDS)
def test_max_pooling_tie_goes_to_first_in_scan_order(build):
    """All-zero 3x3 input, 2x2 windows, stride 1: each window's top-left element wins."""
    x = tf.zeros((1, 3, 3, 1))
    with BUILDS[build]():
        grad = _backward(layers.MaxPooling2D(2, 1), x, tf.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(grad.numpy()[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_max_pooling_lrp_routes_to_winner():
    """Under LRP-epsilon, max pooling passes relevance exactly where the gradient goes."""
    x = tf.random.stateless_normal((1, 9, 9, 2), seed=(1, 2))
    layer = layers.MaxPooling2D(3, 2)
    seed = tf.random.stateless_normal(layer(x).shape, seed=(3, 4))
    lrp = _backward(layer, x, seed, layers.lrp_epsilon(0.1))
    np.testing.assert_array_equal(lrp.numpy(), _tape_gradient(layer, x, seed).numpy())


def test_global_max_pooling_splits_ties_equally():
    """Three tied maxima of 5 each get a third of the upstream signal, as reduce_max's gradient."""
    x = tf.constant([[[[5.0], [5.0]], [[1.0], [5.0]]]])
    layer = layers.GlobalMaxPooling2D()
    seed = tf.constant([[3.0]])
    grad = _backward(layer, x, seed)
    np.testing.assert_allclose(grad.numpy()[0, :, :, 0], [[1, 1], [0, 1]], rtol=1e-6)
    assert_close(grad, _tape_gradient(layer, x, seed))


@pytest.mark.parametrize(
    "layer",
    [layers.AveragePooling2D(2), layers.RMSPooling2D(3, 2), layers.GlobalAveragePooling2D()],
    ids=["average", "rms", "global_average"],
)
def test_lrp_conserves_relevance_of_averaging_pools(layer):
    """Positive inputs, no bias: sum(R_in) = sum(R_out * z / (z + eps)) per LRP-epsilon."""
    x = tf.random.stateless_uniform((2, 8, 8, 3), seed=(5, 6), minval=0.1, maxval=2.0)
    outputs, trace = run_chain([layer], x)
    relevance = tf.random.stateless_uniform(outputs.shape, seed=(7, 8))
    epsilon = 0.05
    z = outputs
    if isinstance(layer, layers.RMSPooling2D):
        z = tf.nn.avg_pool2d(tf.square(x), 3, 2, "VALID")
    expected = tf.reduce_sum(relevance * z / (z + epsilon))
    got = tf.reduce_sum(backward(trace, relevance, layers.lrp_epsilon(epsilon)))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: layers.MaxPooling2D(0), "pool_size"),
        (lambda: layers.MaxPooling2D(3, (1, 2, 3)), "strides"),
        (lambda: layers.MaxPooling2D(3, 2, padding="full"), "padding"),
    ],
)
def test_bad_arguments_rejected(make, message):
    """Bad pool sizes, strides and paddings are refused, naming the argument."""
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("build", BUILDS)
def test_max_pooling_backward_with_unknown_spatial_size(padding, build):
    """Traced with unknown batch, height and width, the backward still equals the tape."""
    layer = layers.MaxPooling2D(3, 2, padding)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 2))])
    def heatmap(x):
        outputs, trace = run_chain([layer], x)
        return backward(trace, tf.ones_like(outputs))

    with BUILDS[build]():
        heatmap.get_concrete_function()
    for size in (9, 12):
        x = tf.random.stateless_uniform((1, size, size + 1, 2), seed=(size, 0), maxval=3)
        x = tf.round(x)
        assert_close(heatmap(x), _tape_gradient(layer, x, tf.ones_like(layer(x))))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pooling_second_order_on_ties_is_the_same_both_ways(padding):
    """Heatmap-aware training differentiates the backward again: on a black region (ties in
    every window) the weight and input gradients of a heatmap loss are those of nested
    tapes, with the fused kernel (MaxPoolGradGrad) and with the exported rule alike."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=(2, 13, 14, 2)).astype("float32")
    values[:, :7, :7, :] = 0.0
    x = tf.constant(values)
    chain = [
        layers.Conv2D(3, 3, kernel_initializer="glorot_uniform"),
        layers.MaxPooling2D(3, 2, padding),
        layers.Flatten(),
        layers.Dense(1, kernel_initializer="glorot_uniform"),
    ]
    run_chain(chain, x)
    sources = [x, *(w.value for layer in chain for w in layer.trainable_weights)]

    def heatmap_loss_gradients(heatmap_of):
        with tf.GradientTape() as outer:
            outer.watch(x)
            loss = tf.reduce_sum(tf.square(heatmap_of()) * tf.range(13.0)[:, None, None])
        return outer.gradient(loss, sources, unconnected_gradients="zero")

    def ours():
        output, trace = run_chain(chain, x)
        return backward(trace, tf.ones_like(output))

    def nested_tape():
        with tf.GradientTape() as inner:
            inner.watch(x)
            output, _ = run_chain(chain, x)
        return inner.gradient(output, x)

    expected = heatmap_loss_gradients(nested_tape)
    for build in BUILDS.values():
        with build():
            got = heatmap_loss_gradients(ours)
        for value, want in zip(got, expected, strict=True):
            assert_close(value, want)


def test_fused_max_pooling_backward_treats_the_forward_tensors_as_constants():
    """The fused routing depends on the forward tensors only through which input wins, a
    derivative zero almost everywhere: differentiating it sends nothing back through the
    forward pass (no tensors of zeros for heatmap-aware training to carry)."""
    x = tf.random.stateless_normal((2, 9, 9, 2), seed=(4, 0))
    layer = layers.MaxPooling2D(3, 2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        output, trace = run_chain([layer], x)
        tape.watch(output)
        seed = tf.ones_like(output)
        tape.watch(seed)
        gradient = backward(trace, seed)
    assert tape.gradient(gradient, [x, output]) == [None, None]
    assert_close(tape.gradient(gradient, seed), tf.ones_like(output))
