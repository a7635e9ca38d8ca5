"""TFLite variants through LiteRT's signature runner vs the SavedModel, and their descriptions."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from drscreen.export import ExportConfig, export, tflite
from drscreen.export.signatures import ScreeningFunctions, SignatureConfig
from drscreen.export.weight_quantization import MIN_ELEMENTS, symmetric_int8
from drscreen.models import build
from tests.spread import assert_within_spread

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")

# Per variant: largest |score|, |grade| and |quality| difference from the SavedModel as a
# fraction of the smallest gap between the photographs' own values (None: not compared,
# int8's quantized image-quality figures), and the smallest per-image heatmap Pearson r.
# Every fraction is under 0.5, so a variant answering a constant or swapping two photographs
# fails; two photographs' heatmaps correlate at r < 0.2, so a swapped heatmap fails too.
# Measured on the fixture (gaps: score 0.16, grade 1.0, quality 0.023): float16 0.001 /
# 0.0014 / 0.08 and r > 0.9999; dynamic_int8 0.0014 / 0.0019 / 0 and r > 0.9999 (8-bit
# weights can reroute the gradient at leaky-ReLU kinks and pooling ties: r 0.7 on net A);
# full-integer int8, which rounds every activation, 0.14 / 0.20.
# The fixture's weights are all under MIN_ELEMENTS, so its int8_weights file computes float32's
# maths; `test_int8_weights_heatmap_is_that_of_the_rounded_weights` quantizes a wider net.
THRESHOLDS = {
    "float32": {"score": 1e-4, "grade": 1e-4, "quality": 1e-4, "heatmap_r": 0.99999},
    "int8_weights": {"score": 1e-4, "grade": 1e-4, "quality": 1e-4, "heatmap_r": 0.99999},
    "float16": {"score": 0.01, "grade": 0.01, "quality": 0.25, "heatmap_r": 0.999},
    "dynamic_int8": {"score": 0.02, "grade": 0.02, "quality": 1e-4, "heatmap_r": 0.95},
    "int8": {"score": 0.4, "grade": 0.4, "quality": None, "heatmap_r": None},
}
CROSS_IMAGE_R = 0.3
"""Above the Pearson r between the fixture heatmaps of two different photographs."""


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _runner(exported, variant: str, signature: str):
    path = os.path.join(exported.path, "tflite", tflite.file_name(variant))
    interpreter = Interpreter(model_path=path)
    assert set(interpreter.get_signature_list()) == set(tflite.VARIANT_SIGNATURES[variant])
    return interpreter.get_signature_runner(signature)


def _size(exported, variant: str) -> int:
    return os.path.getsize(os.path.join(exported.path, "tflite", tflite.file_name(variant)))


def _compared(limits: dict) -> list[str]:
    return [name for name in ("score", "grade", "quality") if limits[name] is not None]


@pytest.mark.parametrize("variant", tflite.VARIANTS)
def test_variant_agrees_with_saved_model(exported, photographs, variant):
    """Score, grade and quality within the variant's fraction of the gap between photographs;
    each heatmap correlated with its own photograph's, above any two photographs' r."""
    _, images, _ = photographs
    limits = THRESHOLDS[variant]
    loaded = tf.saved_model.load(exported.path)
    heatmap_signature = limits["heatmap_r"] is not None
    signature = "predict_float" if heatmap_signature else "predict_score"
    expected = loaded.signatures[signature](images=tf.constant(images))
    expected = {name: value.numpy() for name, value in expected.items()}
    outputs = _runner(exported, variant, signature)(images=images)
    assert outputs["quality"].shape == (3,)
    assert np.all((outputs["quality"] >= 0) & (outputs["quality"] <= 1))
    for name in _compared(limits):
        assert_within_spread(outputs[name], expected[name], limits[name], f"{variant} {name}")
    if heatmap_signature:
        assert outputs["heatmap"].shape == (3, 64, 64)
        for index in range(len(images)):
            r = _pearson(outputs["heatmap"][index], expected["heatmap"][index])
            assert r >= limits["heatmap_r"], (variant, index, r)
            others = [i for i in range(len(images)) if i != index]
            for other in others:
                cross = _pearson(expected["heatmap"][index], expected["heatmap"][other])
                assert cross < CROSS_IMAGE_R, (index, other, cross)


@pytest.mark.parametrize("variant", tflite.VARIANTS)
def test_variant_with_swapped_photographs_fails(exported, photographs, variant):
    """The check above has power: the variant's outputs for the photographs in another order
    (the second and third swapped), or a constant answer, fail it."""
    _, images, _ = photographs
    limits = THRESHOLDS[variant]
    signature = "predict_float" if limits["heatmap_r"] is not None else "predict_score"
    expected = tf.saved_model.load(exported.path).signatures[signature](images=tf.constant(images))
    swapped = _runner(exported, variant, signature)(images=images[[0, 2, 1]])
    for name in _compared(limits):
        reference = expected[name].numpy()
        best_constant = np.full_like(reference, (reference.max() + reference.min()) / 2)
        for wrong in (swapped[name], best_constant):
            with pytest.raises(AssertionError, match="smallest gap between images"):
                assert_within_spread(wrong, reference, limits[name], name)


def test_float_variants_return_score_only_signature_too(exported, photographs):
    """predict_score of the float32 file equals predict_float's score."""
    _, images, _ = photographs
    scores = _runner(exported, "float32", "predict_score")(images=images)
    full = _runner(exported, "float32", "predict_float")(images=images)
    np.testing.assert_allclose(scores["score"], full["score"], atol=1e-6)


def test_builtin_ops_only(exported):
    """No Flex (SELECT_TF_OPS) or custom op in any variant."""
    for variant in tflite.VARIANTS:
        path = os.path.join(exported.path, "tflite", tflite.file_name(variant))
        interpreter = Interpreter(model_path=path)
        names = {op["op_name"] for op in interpreter._get_ops_details()}
        assert names and not [n for n in names if n.startswith("Flex") or n == "CUSTOM"]


def test_int8_is_full_integer(exported):
    """int8: every convolution and dense layer runs on int8 tensors."""
    path = os.path.join(exported.path, "tflite", tflite.file_name("int8"))
    interpreter = Interpreter(model_path=path)
    details = interpreter.get_tensor_details()
    dtypes = {d["index"]: d["dtype"] for d in details}
    heavy = [
        op for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")
    ]  # fmt: skip
    assert heavy
    for op in heavy:
        assert all(dtypes[i] == np.int8 for i in op["inputs"][:2] if i >= 0), op["op_name"]


def test_int8_needs_calibration_images(tmp_path):
    """int8 without representative images is refused before converting."""
    with pytest.raises(ValueError, match="representative_images"):
        tflite.converter(str(tmp_path), "int8", ("predict_score",))


def test_dynamic_int8_stores_int8_convolution_weights(exported):
    """dynamic_int8: large convolution kernels are int8 constants on float activations."""
    path = os.path.join(exported.path, "tflite", tflite.file_name("dynamic_int8"))
    interpreter = Interpreter(model_path=path)
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    kernels = [(dtypes[op["inputs"][0]], dtypes[op["inputs"][1]]) for op in convolutions]
    # Kernels under 1024 weights (the first convolutions of this width-4 net, the gate's
    # filters) stay float.
    assert (np.float32, np.int8) in kernels
    assert {activation for activation, _ in kernels} == {np.float32}
    int8_bytes = sum(
        int(np.prod(d["shape"])) for d in interpreter.get_tensor_details() if d["dtype"] == np.int8
    )
    # Each int8 weight replaces a float32 one: the file shrinks by about 3 bytes per weight.
    saved = _size(exported, "float32") - _size(exported, "dynamic_int8")
    assert saved >= 2.5 * int8_bytes > 0


@pytest.fixture(scope="module")
def wider(tmp_path_factory):
    """The small network at 64 px, width 32 (its last convolutions and hidden dense layer
    reach MIN_ELEMENTS), exported as SavedModel, int8_weights and dynamic_int8."""
    keras.utils.set_random_seed(7)
    model = build("small", input_size=64, width=32)
    config = ExportConfig(
        formats=("saved_model", "tflite"), tflite_variants=("int8_weights", "dynamic_int8")
    )
    return model, export(model, str(tmp_path_factory.mktemp("wider")), config, source="wider")


def test_int8_weights_heatmap_is_that_of_the_rounded_weights(wider, photographs):
    """int8_weights rounds weights and nothing else: its heatmap is TensorFlow's heatmap of
    the model with its large weights rounded to int8 per output channel (each backward kernel
    is rounded on its own, hence r and not equality), and closer to float's than
    dynamic_int8's, which also rounds activations."""
    model, exported = wider
    _, images, _ = photographs
    images = tf.constant(images)
    functions = ScreeningFunctions(model, SignatureConfig())
    float_maps = functions.predict(images)["heatmap"].numpy()
    rounded = [v for v in model.weights if np.prod(v.shape) >= MIN_ELEMENTS]
    assert len(rounded) == 3  # conv4, conv5 and dense1 kernels
    for variable in rounded:
        values, scales = symmetric_int8(variable.numpy(), len(variable.shape) - 1)
        variable.assign(values * scales)
    rounded_maps = functions.predict(images)["heatmap"].numpy()
    maps = {
        variant: _runner(exported, variant, "predict_float")(images=images.numpy())["heatmap"]
        for variant in ("int8_weights", "dynamic_int8")
    }
    float_to_rounded = []
    for index in range(len(images)):
        assert _pearson(maps["int8_weights"][index], rounded_maps[index]) >= 0.9995
        float_to_rounded.append(_pearson(float_maps[index], rounded_maps[index]))
        weights_only = _pearson(maps["int8_weights"][index], float_maps[index])
        hybrid = _pearson(maps["dynamic_int8"][index], float_maps[index])
        assert weights_only >= 0.97 and weights_only > hybrid, (index, weights_only, hybrid)
    assert min(float_to_rounded) < 0.99  # the rounding moves this random net's heatmap


def test_int8_weights_rewrites_an_existing_float32_conversion_into_the_same_file(wider):
    """Given the float32 flatbuffer (as the export does when it writes both), int8_weights is
    that file rewritten, byte for byte the file converted on its own (the wider export wrote
    int8_weights without a float32 file)."""
    _, exported = wider
    with open(os.path.join(exported.path, "tflite", tflite.file_name("int8_weights")), "rb") as f:
        on_its_own = f.read()
    float32 = tflite.convert(exported.path, "float32")
    reused = tflite.convert(exported.path, "int8_weights", float32=float32)
    assert reused == on_its_own and reused != float32


def test_untied_biases_are_int8_in_both_int8_variants(tmp_path):
    """An o_O net's untied biases (one value per position and channel) are int8 behind
    DEQUANTIZE in int8_weights and dynamic_int8, both files under 0.35 of float32's (not a
    quarter at this size: its first convolutions stay float)."""
    keras.utils.set_random_seed(3)
    model = build("oO_netA", input_size=112, width=48, depth=3)
    config = ExportConfig(
        formats=("saved_model", "tflite"),
        tflite_variants=("float32", "int8_weights", "dynamic_int8"),
    )
    exported = export(model, str(tmp_path), config, source="untied")
    untied = [
        v for v in model.weights if v.path.endswith("bias") and len(v.shape) == 3
    ]  # (H, W, C)
    large = [v for v in untied if np.prod(v.shape) >= MIN_ELEMENTS]
    assert large
    for variant in ("int8_weights", "dynamic_int8"):
        interpreter = Interpreter(
            model_path=os.path.join(exported.path, "tflite", tflite.file_name(variant))
        )
        int8_shapes = {
            tuple(int(n) for n in d["shape"])
            for d in interpreter.get_tensor_details()
            if d["dtype"] == np.int8
        }
        for bias in large:
            assert tuple(bias.shape) in int8_shapes, (variant, bias.path)
        assert _size(exported, variant) < 0.35 * _size(exported, "float32"), variant


@pytest.mark.parametrize("variant", tflite.VARIANTS)
def test_edge_description_matches_the_file(exported, variant):
    """drscreen_<variant>.json beside the file: its signatures' names and shapes, ranges."""
    directory = os.path.join(exported.path, "tflite")
    with open(os.path.join(directory, tflite.description_name(variant)), encoding="utf-8") as f:
        description = json.load(f)
    assert description["file"] == tflite.file_name(variant)
    assert description["bytes"] == _size(exported, variant)
    interpreter = Interpreter(model_path=os.path.join(directory, tflite.file_name(variant)))
    assert set(description["signatures"]) == set(interpreter.get_signature_list())
    for name, tensors in description["signatures"].items():
        runner = interpreter.get_signature_runner(name)
        assert set(tensors["outputs"]) == set(runner.get_output_details())
        assert tensors["inputs"]["images"]["shape"] == [-1, 64, 64, 3]
        assert tensors["inputs"]["images"]["range"] == [0.0, 255.0]
        assert tensors["outputs"]["score"] == {
            "dtype": "float32", "shape": [-1], "range": [0.0, 1.0],
            "meaning": "calibrated probability of referable DR",
        }  # fmt: skip
        assert tensors["outputs"]["quality"]["range"] == [0.0, 1.0]
    assert description["quality"]["agreement_with_float32"]
    assert 0 < description["quality"]["threshold"] < 1
    if "predict_float" in description["signatures"]:
        heatmap = description["signatures"]["predict_float"]["outputs"]["heatmap"]
        assert heatmap["shape"] == [-1, 64, 64] and heatmap["range"] == [0.0, None]
    assert description["input_size"] == 64
    assert description["heatmap"]["agreement_with_float32"]
    assert any("crop the square" in step for step in description["preprocessing"]["device_must"])
