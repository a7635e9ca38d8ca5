"""The SavedModel export: files, warmup requests, signatures vs the Keras model, versioning."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from drscreen import cli
from drscreen.data.fundus import field_of_view_mask
from drscreen.data.gradability import gradability_features
from drscreen.export import SIGNATURES, read_description, resolve_version
from drscreen.export.saved_model import WARMUP_DIR, WARMUP_FILE
from drscreen.heatmaps import compute
from drscreen.models.quality import default_quality_gate
from tests.fixture_model import EXPORT_CALIBRATION

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")


def _expected(model, images: np.ndarray, masks: np.ndarray | None) -> dict[str, np.ndarray]:
    """Keras model + `drscreen.heatmaps.compute`, the score by the fixture's logistic in numpy,
    the quality by the shipped gate's formula in numpy on the eager gradability features."""
    grade, heatmap = compute(model, images, fov_masks=masks)
    fov = field_of_view_mask(images) if masks is None else masks
    quality = default_quality_gate().quality(gradability_features(images, fov).numpy())
    grade = grade.numpy()
    np.testing.assert_allclose(grade, model.predict(images, verbose=0)[:, 0], atol=1e-5)
    midpoint, scale = EXPORT_CALIBRATION.midpoint, EXPORT_CALIBRATION.scale
    score = 1.0 / (1.0 + np.exp(-(grade.astype(np.float64) - midpoint) / scale))
    return {"score": score, "grade": grade, "heatmap": heatmap.numpy(), "quality": quality}


def _run_cli(*args: str) -> int:
    """Exit status of `drscreen export ARGS`."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", *args])
    return exit_info.value.code or 0  # sys.exit(None): success


def test_files_and_description(exported):
    """saved_model.pb, variables/ and the description with the documented fields."""
    assert os.path.isfile(os.path.join(exported.path, "saved_model.pb"))
    assert os.listdir(os.path.join(exported.path, "variables"))
    assert exported.version == 1 and os.path.basename(exported.path) == "1"
    description = read_description(exported.path)
    assert description["input"]["size"] == 64
    assert description["heatmap"] == {
        "method": "sensitivity", "size": 64, "pooling": "none", "field_of_view_masked": True
    }  # fmt: skip
    assert description["calibration"]["midpoint"] == EXPORT_CALIBRATION.midpoint == 2.0
    assert description["calibration"]["scale"] == EXPORT_CALIBRATION.scale == 1.0
    assert set(description["formats"]) == {"saved_model", "tflite", "onnx"}
    assert not [e for e in os.listdir(os.path.dirname(exported.path)) if e.startswith(".")]


def test_warmup_requests_parse_as_prediction_logs(exported):
    """assets.extra/tf_serving_warmup_requests: one PredictRequest per signature."""
    path = os.path.join(exported.path, WARMUP_DIR, WARMUP_FILE)
    logs = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    requests = [log.predict_log.request for log in logs]
    assert [r.model_spec.signature_name for r in requests] == list(SIGNATURES)
    assert requests[0].inputs["images"].dtype == tf.string.as_datatype_enum
    assert tf.make_ndarray(requests[1].inputs["images"]).shape == (1, 64, 64, 3)
    loaded = tf.saved_model.load(exported.path)
    for request in requests:
        signature = loaded.signatures[request.model_spec.signature_name]
        outputs = signature(images=tf.constant(tf.make_ndarray(request.inputs["images"])))
        assert outputs["score"].shape == (1,)


@pytest.mark.parametrize("input_type", ["bytes", "float", "score_only"])
def test_signature_matches_keras_model(exported, model, photographs, input_type):
    """Each signature returns the Keras model's grade, logistic score, FOV-masked heatmap and
    the gate's quality."""
    encoded, images, masks = photographs
    loaded = tf.saved_model.load(exported.path)
    if input_type == "bytes":
        outputs = loaded.signatures["serving_default"](images=tf.constant(encoded))
        expected = _expected(model, images, masks)
    else:
        name = "predict_float" if input_type == "float" else "predict_score"
        outputs = loaded.signatures[name](images=tf.constant(images))
        expected = _expected(model, images, None)
    names = ("score", "grade", "quality")
    if input_type != "score_only":
        names += ("heatmap",)
    lesions = () if input_type == "score_only" else ("lesions",)
    assert sorted(outputs) == sorted(names + lesions)
    for name in names:
        tolerance = 1e-5 * max(1.0, float(np.abs(expected[name]).max()))
        np.testing.assert_allclose(outputs[name].numpy(), expected[name], atol=tolerance)
    if input_type != "score_only":
        assert outputs["heatmap"].shape == (3, 64, 64)
        assert float(tf.reduce_sum(outputs["heatmap"])) > 0.0
        outside = outputs["heatmap"].numpy()[(masks if input_type == "bytes" else 1.0) == 0]
        assert not np.any(outside)


def test_saved_model_cli_lists_documented_signatures(exported):
    """`saved_model_cli show --all`: the three signatures, predict method, named inputs."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", exported.path, "--all"],
        capture_output=True, text=True, timeout=120, check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
    )  # fmt: skip
    text = result.stdout
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in text
    assert text.count("Method name is: tensorflow/serving/predict") == 3
    assert "dtype: DT_STRING" in text
    assert text.count("outputs['heatmap']") == 2


def test_cli_exports_next_version_and_refuses_existing(exported, model, tmp_path, capsys):
    """A second export becomes version 2; an explicit existing version is refused."""
    base = tmp_path / "base"
    shutil.copytree(exported.path, base / "1")
    model_file = str(tmp_path / "model.keras")
    model.save(model_file)
    assert _run_cli(f"--model={model_file}", f"--out={base}", "--format=saved_model") == 0
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert set(read_description(str(base / "2"))["formats"]) == {"saved_model"}
    assert resolve_version(str(base)) == 3
    with pytest.raises(FileExistsError, match="never overwritten"):
        resolve_version(str(base), 2)
    assert _run_cli(f"--model={model_file}", f"--out={base}", "--version=1") == 1
    assert "already exists" in capsys.readouterr().err
    assert sorted(os.listdir(base)) == ["1", "2"]
