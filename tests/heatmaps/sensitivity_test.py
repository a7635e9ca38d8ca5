"""Tests of the sensitivity heatmap: channel reduction by hand, and equality with a tape."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps.sensitivity import channel_map, sensitivity
from tests.heatmaps.toy import toy_model

GRADIENT = np.array([[[[1.0, -2.0, 0.5], [0.0, 3.0, -4.0]]]], np.float32)  # (1, 1, 2, 3)
IMAGES = np.array([[[[10.0, 1.0, 2.0], [5.0, 0.5, 1.0]]]], np.float32)


@pytest.mark.parametrize(
    ("reduction", "form", "expected"),
    [
        ("sum", "abs", [3.5, 7.0]),  # 1 + 2 + 0.5; 0 + 3 + 4
        ("max", "abs", [2.0, 4.0]),
        ("sum", "square", [5.25, 25.0]),  # 1 + 4 + 0.25; 9 + 16
        ("max", "square", [4.0, 16.0]),
        ("sum", "times_input", [13.0, 5.5]),  # 10 + 2 + 1; 0 + 1.5 + 4
        ("max", "times_input", [10.0, 4.0]),
        ("sum", "increase", [1.5, 3.0]),  # 1 + 0.5; 3
        ("sum", "decrease", [2.0, 4.0]),  # 2; 4
        ("max", "increase", [1.0, 3.0]),
        ("max", "decrease", [2.0, 4.0]),
    ],
)
def test_channel_map_by_hand(reduction, form, expected):
    """Each reduction/form combination on a 1x2 image, computed by hand."""
    result = channel_map(tf.constant(GRADIENT), tf.constant(IMAGES), reduction, form)
    np.testing.assert_allclose(result.numpy(), [[expected]], rtol=1e-6)


def test_signed_halves_add_up_to_the_absolute_map():
    """increase + decrease = |g| (summed over channels) on a random signal."""
    gradient = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 5, 3)), tf.float32)
    images = tf.zeros_like(gradient)
    halves = channel_map(gradient, images, form="increase") + channel_map(
        gradient, images, form="decrease"
    )
    np.testing.assert_allclose(halves.numpy(), channel_map(gradient, images).numpy(), rtol=1e-6)


def test_channel_map_rejects_unknown_options():
    """Unknown reduction/form names list the valid ones."""
    with pytest.raises(ValueError, match="'sum', 'max'"):
        channel_map(tf.constant(GRADIENT), tf.constant(IMAGES), reduction="mean")
    with pytest.raises(ValueError, match="'abs', 'square', 'times_input'"):
        channel_map(tf.constant(GRADIENT), tf.constant(IMAGES), form="log")


def test_sensitivity_equals_tape_on_toy_model():
    """sum_c |d grade / d image| equals the tape's, and the grades are the model's output."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        grades = model(images)[:, 0]
        total = tf.reduce_sum(grades)
    expected = tf.reduce_sum(tf.abs(tape.gradient(total, images)), axis=-1)
    scores, heatmaps = sensitivity(model, images)
    np.testing.assert_allclose(scores.numpy(), grades.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        heatmaps.numpy(), expected.numpy(), atol=1e-5 * float(tf.reduce_max(expected))
    )


def _small_model_function():
    """(grade, FOV-masked sensitivity heatmap) of the small zoo model, batch 2, 64 px, traced
    inside `drscreen.layers.portable()` as the export traces it."""
    from drscreen.heatmaps.api import compute
    from drscreen.layers import portable
    from drscreen.models import build

    model = build("small", input_size=64, width=4)
    spec = tf.TensorSpec((2, 64, 64, 3), tf.float32, name="images")
    function = tf.function(lambda images: compute(model, images), input_signature=[spec])
    with portable():
        function.get_concrete_function()
    yy, xx = np.mgrid[:64, :64] - 31.5
    disc = (np.hypot(yy, xx) < 28)[None, ..., None]
    rng = np.random.default_rng(8)
    images = (rng.uniform(40, 255, (2, 64, 64, 3)) * disc).astype(np.float32)
    return function, images


def test_tflite_builtins_only_matches_tf():
    """TFLite conversion with TFLITE_BUILTINS only succeeds; the interpreter matches TF."""
    from ai_edge_litert.interpreter import Interpreter

    function, images = _small_model_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], function
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    results = sorted(
        (interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()),
        key=lambda array: array.ndim,
    )
    expected_scores, expected_maps = (tensor.numpy() for tensor in function(images))
    np.testing.assert_allclose(results[0], expected_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[1], expected_maps, atol=1e-4 * expected_maps.max())


def test_onnx_runs_without_unsupported_ops_and_matches_tf():
    """tf2onnx converts with no unsupported op; onnxruntime matches TF."""
    import onnxruntime
    import tf2onnx

    function, images = _small_model_function()
    onnx_model, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=17
    )
    op_types = {node.op_type for node in onnx_model.graph.node}
    assert not {"MaxPoolGrad", "LeakyReluGrad", "SigmoidGrad", "ShapeN"} & op_types
    session = onnxruntime.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    scores, maps = session.run(None, {input_name: images})
    expected_scores, expected_maps = (tensor.numpy() for tensor in function(images))
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(maps, expected_maps, atol=1e-4 * expected_maps.max())
