"""Tests of the model zoo: architectures, serialization, and exact heatmaps on every model."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.sensitivity import sensitivity
from drscreen.models import MODELS, build

# Smallest valid inputs (see stack_test.test_min_input_sizes), width 4: fast on a CPU.
SMALL_CONFIGS = {
    "small": 64,
    "oO_netA": 245,
    "oO_netB": 245,
    "evidence": 64,
    "unet_evidence": 64,
}


def _images(size: int, count: int = 2, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0, 255, (count, size, size, 3)), tf.float32)


def test_net_a_shapes_and_parameters_at_448():
    """Golden per-layer output shapes of o_O net A at 448 px, n = 32, and its parameter count.

    Conv kernels k·k·c_in·c_out plus untied biases h·w·c_out:
    conv1 5·5·3·32 + 224·224·32 = 1,608,032     conv2 3·3·32·32 + 224·224·32 = 1,614,848
    conv3 5·5·32·64 + 56·56·64 = 251,904        conv4, conv5 3·3·64·64 + 56·56·64 = 237,568
    conv6 3·3·64·128 + 27·27·128 = 167,040      conv7, conv8 3·3·128·128 + 93,312 = 240,768
    conv9 3·3·128·256 + 13·13·256 = 338,176     conv10, conv11 589,824 + 43,264 = 633,088
    conv12 3·3·256·512 + 6·6·512 = 1,198,080    conv13 2,359,296 + 18,432 = 2,377,728
    dense1 2048·1024 + 1024 = 2,098,176         dense2 512·1024 + 1024 = 525,312
    grade 512 + 1 = 513                         total 12,402,657
    """
    model = build("oO_netA")
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    expected = {
        "normalization": (448, 448, 3),
        "conv1": (224, 224, 32), "conv2": (224, 224, 32), "pool1": (111, 111, 32),
        "conv3": (56, 56, 64), "conv4": (56, 56, 64), "conv5": (56, 56, 64),
        "pool2": (27, 27, 64),
        "conv6": (27, 27, 128), "conv7": (27, 27, 128), "conv8": (27, 27, 128),
        "pool3": (13, 13, 128),
        "conv9": (13, 13, 256), "conv10": (13, 13, 256), "conv11": (13, 13, 256),
        "pool4": (6, 6, 256),
        "conv12": (6, 6, 512), "conv13": (6, 6, 512), "pool5": (2, 2, 512),
        "flatten": (2048,), "dropout1": (2048,), "dense1": (1024,), "maxout1": (512,),
        "dropout2": (512,), "dense2": (1024,), "maxout2": (512,), "grade": (1,),
    }  # fmt: skip
    for name, shape in expected.items():
        assert shapes[name] == shape, name
    assert isinstance(model.get_layer("pool5"), __import__("drscreen").layers.RMSPooling2D)
    convs = [
        1_608_032, 1_614_848, 251_904, 237_568, 237_568, 167_040, 240_768, 240_768,
        338_176, 633_088, 633_088, 1_198_080, 2_377_728,
    ]  # fmt: skip
    assert model.count_params() == sum(convs) + 2_098_176 + 525_312 + 513 == 12_402_657


def test_net_b_shapes_at_448():
    """Net B (width 4 for speed): 4x4 kernels, one 16n conv, RMS pool 3/2: 6x6x64 -> 2x2x64."""
    model = build("oO_netB", width=4)
    assert model.get_layer("conv1").kernel.shape == (4, 4, 3, 4)
    assert model.get_layer("conv12").output.shape[1:] == (6, 6, 64)
    assert model.get_layer("pool5").output.shape[1:] == (2, 2, 64)
    assert "conv13" not in [layer.name for layer in model.layers]


def test_small_model_size():
    """~225k parameters at the default width; tied biases; default 192 px input."""
    model = build("small")
    assert model.input_shape == (None, 192, 192, 3)
    assert 100_000 <= model.count_params() <= 300_000
    assert build("small", input_size=128).count_params() == model.count_params()


def test_small_model_parameters_by_hand():
    """Width 4, 64 px: 5·5·3·4+4, 3·3·4·8+8, 3·3·8·16+16, 3·3·16·24+24, 3·3·24·32+32 conv
    parameters, then dense 32·64+64 and grade 32+1: 14,337 (tied biases: any input size)."""
    model = build("small", input_size=64, width=4)
    convs = [304, 296, 1_168, 3_480, 6_944]
    assert model.count_params() == sum(convs) + 2_112 + 33 == 14_337


def test_evidence_model_parameters_by_hand():
    """Width 4: conv 5·5·3·4+4, 3·3·4·8+8, 3·3·8·16+16, 3·3·16·16+16, two 1·1·16·16+16, the
    evidence 1·1·16+1 and a bias-free grade 1: 4,650 (tied biases: any input size)."""
    model = build("evidence", input_size=64, width=4)
    convs = [304, 296, 1_168, 2_320, 272, 272]
    assert model.count_params() == sum(convs) + 17 + 1 == 4_650
    assert build("evidence", input_size=128, width=4).count_params() == 4_650
    assert model.get_layer("evidence_act").output.shape[1:] == (15, 15, 1)  # 64 / 2, pool 3/2


def test_evidence_receptive_field_is_29_px():
    """One evidence value depends on a 29 x 29 window of the photograph and no pixel outside."""
    model = build("evidence", input_size=96, width=4)
    chain = keras.Sequential(
        model.layers[: [layer.name for layer in model.layers].index("evidence") + 1]
    )
    images = _images(96, count=1, seed=5)
    with tf.GradientTape() as tape:
        tape.watch(images)
        centre = chain(images)[0, 10, 10, 0]
    support = np.argwhere(np.abs(tape.gradient(centre, images).numpy()[0]).sum(-1) > 0)
    extent = support.max(axis=0) - support.min(axis=0) + 1
    assert tuple(extent) == (29, 29)


def test_evidence_model_without_evidence_grades_zero():
    """Evidence below zero everywhere: grade exactly 0 and a zero heatmap (no bias anywhere)."""
    model = build("evidence", input_size=64, width=4)
    evidence = model.get_layer("evidence")
    evidence.kernel.assign(tf.zeros_like(evidence.kernel))
    evidence.bias.assign(-tf.ones_like(evidence.bias))
    grades, heatmaps = sensitivity(model, _images(64))
    assert not grades.numpy().any() and not heatmaps.numpy().any()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_battery(name):
    """Every zoo model: config round trip, (N, 1) output, one fit step that moves every
    kernel."""
    size = SMALL_CONFIGS[name]
    model = build(name, input_size=size, width=4)
    clone = keras.Sequential.from_config(model.get_config())
    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
    assert clone.count_params() == model.count_params()
    images = _images(size, seed=4)
    assert model(images).shape == (2, 1) and model.output_shape == (None, 1)

    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    kernels = {v.path: v.numpy().copy() for v in model.trainable_variables if "kernel" in v.path}
    history = model.fit(images, np.ones((2, 1), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = {v.path: v.numpy() for v in model.trainable_variables if v.path in kernels}
    assert after.keys() == kernels.keys()  # nested layers' kernels too (unet_evidence)
    assert all(not np.array_equal(kernels[path], after[path]) for path in kernels)


MIXED_DTYPES = {"mixed_float16": (tf.float16, 1e-2), "mixed_bfloat16": (tf.bfloat16, 5e-2)}
"""Compute dtype of each mixed policy, and the largest grade difference from float32's
relative to the grade (float16 keeps 11 significant bits, bfloat16 8)."""

MIXED_HEATMAP_ERROR = {
    "small": {"mixed_float16": 0.01, "mixed_bfloat16": 0.4},
    "evidence": {"mixed_float16": 0.1, "mixed_bfloat16": 0.15},
    "oO_netA": {"mixed_float16": 0.25, "mixed_bfloat16": 0.4},
    "oO_netB": {"mixed_float16": 0.25, "mixed_bfloat16": 0.4},
    "unet_evidence": {"mixed_float16": 0.1, "mixed_bfloat16": 0.2},
}
"""Largest relative L2 distance of a mixed-precision heatmap from float32's. Measured on
these two random images: small 0.001 / 0.32, evidence 0.05 / 0.09, net A 0.18 / 0.29, net B
0.08 / 0.28, evidence U-Net 0.027 / 0.073 (float16 / bfloat16): a rounding that flips a
max-pooling or maxout choice reroutes a whole receptive field, most in the deep o_O nets.
Two images' heatmaps are 0.6 or more apart."""


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("policy", sorted(MIXED_DTYPES))
def test_mixed_precision_heatmap_is_float32s(name, policy):
    """Under a mixed policy, the same weights give float32's grades and sensitivity heatmaps
    to the compute dtype's precision, with no pixel flushed to zero (the o_O nets' pixel
    gradients, about 1e-6, are below float16's smallest normal), and another image's heatmap
    is further away."""
    dtype, grade_tolerance = MIXED_DTYPES[policy]
    tolerance = MIXED_HEATMAP_ERROR[name][policy]
    size = SMALL_CONFIGS[name]
    images = tf.cast(tf.cast(_images(size, seed=4), dtype), tf.float32)
    model = build(name, input_size=size, width=4)
    grades, heatmaps = (t.numpy() for t in sensitivity(model, images))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        mixed = build(name, input_size=size, width=4)
        mixed.set_weights(model.get_weights())
        assert mixed(images).dtype == dtype
        mixed_grades, mixed_heatmaps = (t.numpy() for t in sensitivity(mixed, images))
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.abs(mixed_grades - grades).max() <= grade_tolerance * np.abs(grades).max()
    assert np.mean(mixed_heatmaps == 0) <= np.mean(heatmaps == 0) + 1e-3
    errors = [_relative_error(mixed_heatmaps[i], heatmaps[i]) for i in range(len(images))]
    swapped = [_relative_error(mixed_heatmaps[i], heatmaps[1 - i]) for i in range(len(images))]
    assert max(errors) <= tolerance < min(swapped) / 1.5, (errors, swapped)


def test_unknown_name_lists_models():
    """An unknown model name names the known ones."""
    with pytest.raises(ValueError, match="small, oO_netA, oO_netB"):
        build("resnet")


def test_too_small_input_names_the_minimum():
    """Net A needs at least 245 px for its 5 conv blocks, and 53 px for o_O's shallowest net."""
    with pytest.raises(ValueError, match="oO_netA: input_size 200 is too small.*minimum is 245"):
        build("oO_netA", input_size=200, depth=5)
    with pytest.raises(ValueError, match="oO_netA: input_size 40 is too small.*minimum is 53"):
        build("oO_netA", input_size=40)


@pytest.mark.parametrize(
    ("size", "last_conv", "pooled"),
    [(112, "conv8", (6, 6, 128)), (224, "conv11", (6, 6, 256)), (448, "conv13", (6, 6, 512))],
)
def test_oO_progressive_stages_are_o_O_s_shallower_networks(size, last_conv, pooled):
    """o_O's c_128/c_256/c_512 nets: 3, 4, 5 conv blocks, each ending in a 6x6 map that the
    RMS pool 3/3 takes to 2x2 (112 px: 56, pool 27, 14, pool 6)."""
    model = build("oO_netA", input_size=size)
    convs = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert convs[-1] == last_conv
    assert tuple(model.get_layer(last_conv).output.shape[1:]) == pooled
    rms = [layer for layer in model.layers if isinstance(layer, layers.RMSPooling2D)]
    assert len(rms) == 1 and tuple(rms[0].output.shape[1:]) == (2, 2, pooled[-1])
    assert model.get_layer("dense1").kernel.shape == (4 * pooled[-1], 1024)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sensitivity_equals_tape(name):
    """sum_c |d grade / d image| from the engine equals tf.GradientTape's (1e-5 x scale)."""
    model = build(name, input_size=SMALL_CONFIGS[name], width=4)
    images = _images(SMALL_CONFIGS[name])
    with tf.GradientTape() as tape:
        tape.watch(images)
        grades = model(images)[:, 0]
        total = tf.reduce_sum(grades)
    expected = tf.reduce_sum(tf.abs(tape.gradient(total, images)), axis=-1).numpy()
    scores, heatmaps = sensitivity(model, images)
    np.testing.assert_array_equal(scores.numpy(), grades.numpy())
    np.testing.assert_allclose(heatmaps.numpy(), expected, atol=1e-5 * expected.max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_second_order_equals_nested_tapes(name):
    """d mean(H) / d weights through the engine equals nested tapes."""
    model = build(name, input_size=SMALL_CONFIGS[name], width=4)
    images = _images(SMALL_CONFIGS[name], seed=1)
    weights = model.trainable_variables
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(images)
            total = tf.reduce_sum(model(images))
        expected_loss = tf.reduce_mean(tf.reduce_sum(tf.abs(inner.gradient(total, images)), -1))
    expected = outer.gradient(expected_loss, weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(sensitivity(model, images)[1])
    actual = tape.gradient(loss, weights)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-5)
    for variable, got, want in zip(weights, actual, expected, strict=True):
        if "kernel" in variable.path:
            assert got is not None, variable.path
        # A bias feeding only a piecewise-linear activation has a zero second derivative:
        # the tape says zeros, the engine's graph is disconnected (None).
        got = np.zeros(variable.shape) if got is None else tf.convert_to_tensor(got).numpy()
        want = np.zeros(variable.shape) if want is None else tf.convert_to_tensor(want).numpy()
        np.testing.assert_allclose(
            got,
            want,
            atol=1e-4 * np.abs(want).max() + 1e-12,
            err_msg=variable.path,
        )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_save_reload_identical(name, tmp_path):
    """A .keras round trip gives identical outputs (and the same layer classes)."""
    model = build(name, input_size=SMALL_CONFIGS[name], width=4)
    images = _images(SMALL_CONFIGS[name], seed=2)
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert [type(layer) for layer in reloaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(reloaded(images).numpy(), model(images).numpy())


def test_graham_normalization_saves_and_gives_exact_heatmaps(tmp_path):
    """normalization="graham" puts GrahamNormalization first; it reloads and its sensitivity
    heatmap equals tf.GradientTape's."""
    model = build("small", input_size=64, width=4, normalization="graham")
    assert [layer.name for layer in model.layers[:2]] == ["graham", "normalization"]
    assert isinstance(model.layers[0], __import__("drscreen").layers.GrahamNormalization)
    images = _images(64, seed=3)
    path = os.path.join(tmp_path, "graham.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded(images).numpy(), model(images).numpy())
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(reloaded(images))
    expected = tf.reduce_sum(tf.abs(tape.gradient(total, images)), axis=-1).numpy()
    _, heatmaps = sensitivity(reloaded, images)
    np.testing.assert_allclose(heatmaps.numpy(), expected, atol=1e-5 * expected.max())


def test_unknown_normalization_is_refused():
    """An unknown normalization names the known ones."""
    with pytest.raises(ValueError, match="unknown normalization 'zscore'; known: oO, graham"):
        build("small", input_size=64, width=4, normalization="zscore")
