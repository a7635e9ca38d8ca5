"""The skip-decoder layers: `UpSampling2D` and the composite `SkipConcat`, nested as in a U-Net.

The shared battery (backward == tape, second order == nested tapes, both builds, mixed
precision, config and `.keras` round trips) on each, plus references the battery has no
room for: upsampling against TensorFlow's nearest resize, ties and dropout inside nested
composites, guided back-propagation and deconvnet against a hand-written TensorFlow replica
with custom-gradient activations, LRP-epsilon against gradient x input (equal for bias-free
ReLU networks), and the engine's refusals. TFLite and ONNX: the ``unet`` chain of
``export_test.py``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import backward, forward
from drscreen.heatmaps.gradcam import gradcam
from tests.layers.battery import BUILDS, LayerCase, assert_close, run_battery, run_chain


def _unet_level() -> layers.SkipConcat:
    """Two nested skips: 16 -> pool 8 -> conv 4 -> [pool 4 -> conv 5 -> up 8] (9 channels) ->
    conv 1x1 4 -> up 16; with the 3 input channels, 7 out."""
    return layers.SkipConcat(
        [
            layers.MaxPooling2D(3, 2, padding="same"),
            layers.Conv2D(4, 3, kernel_initializer="glorot_uniform", name="outer_conv"),
            layers.LeakyReLU(0.1),
            layers.SkipConcat(
                [
                    layers.MaxPooling2D(2, 2),
                    layers.Conv2D(5, 3, kernel_initializer="glorot_uniform", name="inner_conv"),
                    layers.LeakyReLU(0.0),
                    layers.UpSampling2D(),
                ],
                name="inner_skip",
            ),
            layers.Conv2D(4, 1, kernel_initializer="glorot_uniform"),
            layers.UpSampling2D(),
        ],
        name="outer_skip",
    )


MIXED_L2 = {"mixed_float16": 0.15, "mixed_bfloat16": 0.3}
"""Measured: float16 0.0005-0.10, bfloat16 0.005-0.10 (a LeakyReLU sign or a
pooling choice flipped by rounding inside the skip); another image's backward 1.35-1.45 away."""

# Parameters by hand: conv 3·3·3·4 + 4 = 112; nested: 112 + (3·3·4·5 + 5 = 185) + (9·4 + 4 =
# 40) = 337.
CASES = [
    LayerCase("up_sampling_2", layers.UpSampling2D, (32, 32, 3), 0),
    LayerCase("up_sampling_3", lambda: layers.UpSampling2D(3), (15, 18, 3), 0, (5, 6, 3)),
    LayerCase(
        "skip_concat",
        lambda: layers.SkipConcat([layers.Conv2D(4, 3), layers.LeakyReLU(0.1)]),
        (16, 16, 7),
        112,
        mixed_l2=MIXED_L2,
    ),
    LayerCase("skip_concat_nested", _unet_level, (16, 16, 7), 337, mixed_l2=MIXED_L2),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_battery(case, tmp_path):
    """The layer passes every check of the shared battery."""
    run_battery(case, tmp_path)


@pytest.mark.parametrize("size", [2, 3])
def test_up_sampling_is_nearest_resize(size):
    """Each pixel becomes a size x size block, as TensorFlow's nearest-neighbour resize."""
    x = tf.constant(np.arange(2 * 3 * 5 * 4, dtype="float32").reshape(2, 3, 5, 4))
    expected = tf.image.resize(x, (3 * size, 5 * size), method="nearest")
    np.testing.assert_array_equal(layers.UpSampling2D(size)(x).numpy(), expected.numpy())


def test_up_sampling_backward_is_block_sum_by_hand():
    """A 2x2 upstream block [[1, 2], [3, 4]] sums to 10 on its source pixel, under every rule."""
    layer = layers.UpSampling2D()
    x = tf.ones((1, 1, 2, 1))
    upstream = tf.constant([[1.0, 2.0, 10.0, 20.0], [3.0, 4.0, 30.0, 40.0]])[None, :, :, None]
    for rule in (layers.GRADIENT, layers.GUIDED, layers.DECONVNET, layers.lrp_epsilon(0.1)):
        got = layer.backward(x, layer(x), upstream, rule)
        np.testing.assert_array_equal(got.numpy()[0, :, :, 0], [[10.0, 100.0]])


def _unet(size: int = 16, dropout: float = 0.0) -> keras.Sequential:
    """A small U-Net chain: conv, two nested skips (dropout in the inner one), conv, GAP, dense;
    seeded weights, biases of both signs."""
    keras.utils.set_random_seed(5)

    def conv(filters, kernel=3, name=None):
        return layers.Conv2D(
            filters,
            kernel,
            kernel_initializer="glorot_uniform",
            bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3),
            name=name,
        )

    inner = [layers.MaxPooling2D(2, 2), conv(5, name="inner_conv"), layers.LeakyReLU(0.01)]
    if dropout:
        inner.append(layers.Dropout(dropout, seed=1))
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.InputNormalization(),
            conv(3, name="stem"),
            layers.LeakyReLU(0.01),
            layers.SkipConcat(
                [
                    layers.MaxPooling2D(3, 2, padding="same"),
                    conv(4),
                    layers.LeakyReLU(0.01),
                    layers.SkipConcat([*inner, layers.UpSampling2D()], name="inner_skip"),
                    conv(4, 1),
                    layers.UpSampling2D(),
                ],
                name="outer_skip",
            ),
            conv(2, name="head_conv"),
            layers.LeakyReLU(0.01, name="head_act"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1),
        ]
    )


def _images(size: int = 16, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    images[:, : size // 2, : size // 2] = 0.0  # a black quarter: ties in every pooling
    return tf.constant(images)


def _tape_gradient(model, images, training=False):
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs, trace = forward(model, images, training=training)
        total = tf.reduce_sum(outputs)
    return outputs, trace, tape.gradient(total, images)


@pytest.mark.parametrize("build", BUILDS)
def test_nested_skips_with_ties_equal_tape(build):
    """Black regions tie every max-pooling window inside both composites: still the tape's."""
    model = _unet()
    images = _images()
    with BUILDS[build]():
        outputs, trace, expected = _tape_gradient(model, images)
        got = backward(trace, tf.ones_like(outputs))
    assert_close(got, expected)


def test_training_mode_reuses_dropout_mask_inside_composites():
    """Dropout inside the inner skip: the inner trace carries its mask, backward equals tape."""
    model = _unet(dropout=0.5)
    outputs, trace, expected = _tape_gradient(model, _images(seed=1), training=True)
    assert_close(backward(trace, tf.ones_like(outputs), training=True), expected)


def test_composite_backward_without_its_trace_is_refused():
    """A composite's backward needs the inner trace its forward returned."""
    layer = layers.SkipConcat([layers.Conv2D(2, 3)])
    x = tf.ones((1, 4, 4, 3))
    with pytest.raises(ValueError, match="needs the inner trace"):
        layer.backward(x, layer(x), tf.ones((1, 4, 4, 5)))


def test_composite_refuses_foreign_layers_and_size_changes():
    """Only drscreen layers inside; the inner chain must keep the height and width."""
    with pytest.raises(TypeError, match="'keras_conv'.*not a drscreen BackpropLayer"):
        layers.SkipConcat([keras.layers.Conv2D(2, 3, name="keras_conv")])
    with pytest.raises(ValueError, match="inner chain is empty"):
        layers.SkipConcat([])
    shrinking = layers.SkipConcat([layers.MaxPooling2D(2, 2)], name="shrinking")
    with pytest.raises(ValueError, match="shrinking: the inner chain maps .* same height"):
        shrinking(keras.Input((8, 8, 3)))


def test_gradcam_inside_a_composite_is_refused_by_name():
    """stop_at a layer inside a composite names the composite; its own output is allowed."""
    model = _unet()
    images = _images()
    with pytest.raises(ValueError, match="'inner_conv' is inside the composite layer 'outer_skip'"):
        gradcam(model, images, layer_name="inner_conv")
    _, heatmaps = gradcam(model, images, layer_name="outer_skip")
    assert heatmaps.shape == (2, 16, 16)


def _guided_leaky(slope: float, deconvnet: bool):
    """A leaky ReLU whose TensorFlow gradient is guided back-propagation's (or deconvnet's)."""

    @tf.custom_gradient
    def activation(x):
        def grad(upstream):
            if deconvnet:
                return tf.nn.relu(upstream)
            return tf.nn.relu(upstream * tf.where(x > 0, 1.0, slope))

        return tf.nn.leaky_relu(x, slope), grad

    return activation


def _replica(model: keras.Sequential, images: tf.Tensor, activation) -> tf.Tensor:
    """`_unet`'s forward written in plain TensorFlow with its weights: tf.concat for the skips,
    nearest resize for the upsampling, ``activation`` for every leaky ReLU."""

    def conv(name_or_layer, x):
        layer = model.get_layer(name_or_layer) if isinstance(name_or_layer, str) else name_or_layer
        return tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias

    def up(x):
        return tf.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), method="nearest")

    normalization, _, _, outer, _, _, _, dense = model.layers
    x = normalization(images)
    stem = activation(conv("stem", x))
    pool_a, conv_a, _, inner, conv_b, _ = outer.inner
    pool_i, conv_i = inner.inner[:2]
    y = activation(conv(conv_a, tf.nn.max_pool2d(stem, 3, 2, "SAME")))
    z = up(activation(conv(conv_i, tf.nn.max_pool2d(y, 2, 2, "VALID"))))
    y = up(conv(conv_b, tf.concat([y, z], -1)))
    x = activation(conv("head_conv", tf.concat([stem, y], -1)))
    return tf.reduce_mean(x, axis=[1, 2]) @ dense.kernel + dense.bias


@pytest.mark.parametrize("rule_name", ["guided", "deconvnet"])
@pytest.mark.parametrize("build", BUILDS)
def test_relu_rules_through_nested_skips_equal_replica(rule_name, build):
    """Guided back-propagation and deconvnet through two nested composites equal the tape of a
    plain-TensorFlow replica whose activations carry the rule as their custom gradient."""
    model = _unet()
    images = _images(seed=2)
    rule = layers.GUIDED if rule_name == "guided" else layers.DECONVNET
    activation = _guided_leaky(0.01, deconvnet=rule_name == "deconvnet")
    with tf.GradientTape() as tape:
        tape.watch(images)
        replica = _replica(model, images, activation)
        total = tf.reduce_sum(replica)
    expected = tape.gradient(total, images)
    assert_close(replica, model(images), rtol=1e-5)
    with BUILDS[build]():
        outputs, trace = forward(model, images)
        got = backward(trace, tf.ones_like(outputs), rule)
    assert_close(got, expected)


def test_lrp_through_nested_skips_is_gradient_times_input_without_biases():
    """Bias-free ReLU-family network: LRP-epsilon (epsilon -> 0) equals gradient x input, with
    the relevance of both paths of each skip added (Ancona et al. 2018)."""
    model = _unet()
    for variable in model.variables:
        if variable.path.endswith("bias"):
            variable.assign(tf.zeros_like(variable))
    images = _images(seed=3)
    normalized = model.layers[0](images)
    chain = model.layers[1:]
    outputs, trace = run_chain(list(chain), normalized)
    with tf.GradientTape() as tape:
        tape.watch(normalized)
        total = tf.reduce_sum(run_chain(list(chain), normalized)[0])
    expected = tape.gradient(total, normalized) * normalized
    relevance = backward(trace, outputs, layers.lrp_epsilon(1e-9))  # R = f(x) at the output
    assert_close(relevance, expected, rtol=1e-4)
    np.testing.assert_allclose(
        tf.reduce_sum(relevance, axis=[1, 2, 3]).numpy(), outputs.numpy()[:, 0], rtol=1e-4
    )


def test_up_sampling_bad_arguments_are_refused():
    """A factor below 2 or not an integer, and an input without a static width, name the fault."""
    for size in (1, 2.5):
        with pytest.raises(ValueError, match="size must be an integer >= 2"):
            layers.UpSampling2D(size)
    with pytest.raises(ValueError, match="static width and channel count"):
        layers.UpSampling2D()(keras.Input((None, None, 3)))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_through_nested_skips_is_close_to_float32(policy):
    """The same weights under a mixed policy: the score within 2 % of float32's; under
    mixed_float16 (training's GPU policy) the gradient too. bfloat16's 8-bit mantissa flips
    the sign of near-zero pre-activations, whose leaky-ReLU slope then differs 100-fold (as in
    any chain), so its gradient is only checked finite here and by the battery."""
    reference = _unet()
    images = _images(seed=4)
    outputs, trace = forward(reference, images)
    expected = backward(trace, tf.ones_like(outputs))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        mixed = _unet()
        mixed.set_weights(reference.get_weights())
        mixed_outputs, mixed_trace = forward(mixed, images)
        got = backward(mixed_trace, tf.ones_like(mixed_outputs))
    finally:
        keras.config.set_dtype_policy(previous)
    assert mixed_outputs.dtype != tf.float32
    assert_close(tf.cast(mixed_outputs, tf.float32), outputs, rtol=2e-2)
    if policy == "mixed_float16":
        assert_close(got, expected, rtol=2e-2)
    assert np.all(np.isfinite(got.numpy()))
