"""The full-resolution evidence network (nested skips, upsampling) in every export format.

Exported twice: with the paper's sensitivity heatmap, whose SavedModel output equals the
tape's, and with Grad-CAM, whose heatmap is the evidence map itself (``k / S²`` times
``relu(e)²`` inside the field of view, read off the model's own forward pass). In both,
LiteRT float32 and ONNX Runtime return the SavedModel's score, grade and heatmap.
"""

import os

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from drscreen.data.fundus import field_of_view_mask
from drscreen.export import ExportConfig, SignatureConfig, export, read_description, tflite
from drscreen.heatmaps.backprop import forward
from drscreen.models import build
from tests.fixture_model import INPUT_SIZE

METHODS = (pytest.param("sensitivity", marks=pytest.mark.slow), "gradcam")
"""Grad-CAM (the evidence map as the exported heatmap) in the default run; the sensitivity
export is slow (a second export: minutes), and its TFLite and ONNX conversion through nested
skips is also checked in tests/layers/skip_export_test.py."""


@pytest.fixture(scope="module")
def unet_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    model = build("unet_evidence", input_size=INPUT_SIZE, width=4)
    model.get_layer("grade").kernel.assign([[3.0]])
    return model


@pytest.fixture(scope="module", params=METHODS)
def unet_export(request, unet_model, tmp_path_factory):
    config = ExportConfig(
        signature=SignatureConfig(heatmap_method=request.param),
        tflite_variants=("float32",),
        calibration_images=8,
    )
    folder = str(tmp_path_factory.mktemp(f"unet_{request.param}"))
    return request.param, export(unet_model, folder, config, source="test")


def _reference_heatmap(model: keras.Model, method: str, images: np.ndarray) -> np.ndarray:
    """Sensitivity from the tape; Grad-CAM as k / S² times the traced evidence map."""
    masks = field_of_view_mask(tf.constant(images)).numpy()
    inputs = tf.constant(images)
    if method == "sensitivity":
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            grades = model(inputs, training=False)[:, 0]
        return np.abs(tape.gradient(grades, inputs).numpy()).sum(-1) * masks
    _, trace = forward(model, inputs)
    evidence_map = trace.output_of("evidence_act").numpy()[..., 0]
    return 3.0 / INPUT_SIZE**2 * evidence_map * masks


def test_unet_evidence_exports_agree(unet_model, unet_export, photographs):
    """SavedModel == the in-process reference; LiteRT and ONNX Runtime == the SavedModel."""
    method, exported = unet_export
    _, images, _ = photographs
    saved = tf.saved_model.load(exported.path).signatures["predict_float"](
        images=tf.constant(images)
    )
    heatmap = saved["heatmap"].numpy()
    reference = _reference_heatmap(unet_model, method, images)
    scale = float(np.abs(reference).max())
    assert scale > 0 and (reference > 0.01 * scale).mean() > 0.05  # a map to compare
    np.testing.assert_allclose(heatmap, reference, atol=1e-5 * scale)
    np.testing.assert_allclose(saved["grade"].numpy(), unet_model(images).numpy()[:, 0], rtol=1e-5)

    path = os.path.join(exported.path, "tflite", tflite.file_name("float32"))
    litert = Interpreter(model_path=path).get_signature_runner("predict_float")(images=images)
    description = read_description(exported.path)["formats"]["onnx"]
    session = onnxruntime.InferenceSession(
        os.path.join(exported.path, description["file"]), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    onnx_outputs = dict(zip(names, session.run(None, {"images": images}), strict=True))
    for outputs in (litert, onnx_outputs):
        for name in ("score", "grade", "heatmap"):
            expected = saved[name].numpy()
            tolerance = 1e-5 * max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(outputs[name], expected, atol=tolerance, err_msg=name)
