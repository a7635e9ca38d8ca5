"""The local-evidence network (SquaredReLU, bias-free Dense) in every export format: the
SavedModel's heatmap equals the tape's, and LiteRT float32 and ONNX Runtime return the same
score and heatmap as the SavedModel."""

import os

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from drscreen.data.fundus import field_of_view_mask
from drscreen.export import ExportConfig, export, read_description, tflite
from drscreen.models import build
from tests.fixture_model import INPUT_SIZE


@pytest.fixture(scope="module")
def evidence_export(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = build("evidence", input_size=INPUT_SIZE, width=4)
    config = ExportConfig(tflite_variants=("float32",), calibration_images=8)
    return model, export(model, str(tmp_path_factory.mktemp("evidence")), config, source="test")


def test_evidence_model_exports_its_exact_heatmap(evidence_export, photographs):
    model, exported = evidence_export
    _, images, _ = photographs
    masks = field_of_view_mask(tf.constant(images)).numpy()  # the signature's own FOV
    expected = tf.saved_model.load(exported.path).signatures["predict_float"](
        images=tf.constant(images)
    )
    with tf.GradientTape() as tape:  # the paper's heatmap: |d grade / d pixel| summed over RGB
        inputs = tf.constant(images)
        tape.watch(inputs)
        grades = model(inputs, training=False)[:, 0]
    gradient = tape.gradient(grades, inputs).numpy()
    scale = float(np.abs(expected["heatmap"].numpy()).max())
    tape_heatmap = np.abs(gradient).sum(-1) * masks
    saved = expected["heatmap"].numpy()
    np.testing.assert_allclose(saved, tape_heatmap, atol=1e-5 * scale)

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
            reference = expected[name].numpy()
            tolerance = 1e-5 * max(1.0, float(np.abs(reference).max()))
            np.testing.assert_allclose(outputs[name], reference, atol=tolerance)
