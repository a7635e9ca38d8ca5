"""The ``lesions`` output: the lesion student's map, equal in every format (or the heatmap).

Tolerances are fractions of the spread between images: the smallest, over pairs of the
fixture's photographs, of the largest difference between their lesion maps, so a format
returning another image's map, or the heatmap, fails.
"""

import itertools
import json
import os
import shutil

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from drscreen import cli
from drscreen.data.fundus import field_of_view_mask
from drscreen.export import ExportConfig, export, read_description, tflite
from drscreen.export.signatures import ScreeningFunctions, SignatureConfig
from drscreen.models.runs import RunDirectory
from drscreen.models.segmentation import segmentation_net
from drscreen.serving.client import GrpcClient
from tests.export.served import drscreen_serve
from tests.fixture_model import INPUT_SIZE
from tests.students import scaled_student

FLOAT_VARIANTS = ("float32", "float16", "int8_weights", "dynamic_int8")
# Largest |lesions - SavedModel's lesions| as a fraction of the spread between images.
# float16 rounds the weights (measured 1.4e-3 absolute), dynamic_int8 also the activations
# inside convolutions (1.0e-2); the others compute float32's maths (about 1e-6).
TOLERANCE = {"float32": 1e-4, "int8_weights": 1e-4, "float16": 1e-2, "dynamic_int8": 5e-2}


@pytest.fixture(scope="module")
def student() -> keras.Model:
    return scaled_student(INPUT_SIZE)


@pytest.fixture(scope="module")
def student_export(model, student, tmp_path_factory):
    """``base/1`` of `model` with `student`: SavedModel, the float TFLite variants, ONNX."""
    base = str(tmp_path_factory.mktemp("student_export"))
    config = ExportConfig(tflite_variants=FLOAT_VARIANTS, calibration_images=1)
    return export(model, base, config, source="fixture", lesion_model=student)


def _student_maps(student, images, masks) -> np.ndarray:
    """The in-process reference: the Keras student's channel times the FOV mask."""
    return student.predict(images, verbose=0)[..., 0] * masks


def _spread(maps: np.ndarray) -> float:
    return min(
        float(np.abs(maps[i] - maps[j]).max())
        for i, j in itertools.combinations(range(len(maps)), 2)
    )


def _float_masks(images: np.ndarray) -> np.ndarray:
    """The FOV masks predict_float derives from the cropped images themselves."""
    return field_of_view_mask(tf.constant(images)).numpy()


def test_saved_model_returns_the_students_map(student_export, student, photographs):
    """serving_default (masks of the decoded crop) and predict_float (masks of the image) give
    the Keras student's FOV-masked map; predict_score stays score-only."""
    encoded, images, masks = photographs
    signatures = tf.saved_model.load(student_export.path).signatures
    served = signatures["serving_default"](images=tf.constant(encoded))
    floats = signatures["predict_float"](images=tf.constant(images))
    for outputs, fov in ((served, masks), (floats, _float_masks(images))):
        expected = _student_maps(student, images, fov)
        spread = _spread(expected)
        assert spread > 0.3 and outputs["lesions"].shape == (3, INPUT_SIZE, INPUT_SIZE)
        np.testing.assert_allclose(outputs["lesions"].numpy(), expected, atol=1e-4 * spread)
        assert sorted(outputs) == ["grade", "heatmap", "lesions", "quality", "score"]
    assert "lesions" not in signatures["predict_score"](images=tf.constant(images))


@pytest.mark.parametrize("variant", FLOAT_VARIANTS)
def test_tflite_variant_returns_the_saved_models_lesions(student_export, photographs, variant):
    """Every float TFLite variant's lesions within its share of the spread of the SavedModel's."""
    _, images, _ = photographs
    expected = (
        tf.saved_model.load(student_export.path)
        .signatures["predict_float"](images=tf.constant(images))["lesions"]
        .numpy()
    )
    path = os.path.join(student_export.path, "tflite", tflite.file_name(variant))
    runner = Interpreter(model_path=path).get_signature_runner("predict_float")
    lesions = runner(images=images)["lesions"]
    assert lesions.shape == expected.shape
    assert np.abs(lesions - expected).max() <= TOLERANCE[variant] * _spread(expected)


def test_onnx_returns_the_saved_models_lesions(student_export, photographs):
    """onnxruntime's lesions equal predict_float's; ``images`` is the only input (the
    student's normalisation constants are stored in the graph, not fed)."""
    _, images, _ = photographs
    path = os.path.join(student_export.path, "onnx", "drscreen.onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [value.name for value in session.get_inputs()] == ["images"]
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"images": images}), strict=True))
    expected = tf.saved_model.load(student_export.path).signatures["predict_float"](
        images=tf.constant(images)
    )
    assert sorted(outputs) == ["grade", "heatmap", "lesions", "quality", "score"]
    spread = _spread(expected["lesions"].numpy())
    np.testing.assert_allclose(outputs["lesions"], expected["lesions"].numpy(), atol=1e-4 * spread)


def test_descriptions_say_the_lesions_are_the_students_probability(student_export):
    """drscreen_export.json and each TFLite file's description name the student's map."""
    description = read_description(student_export.path)
    assert description["lesions"]["map"] == "lesion student"
    assert description["lesions"]["range"] == [0.0, 1.0]
    assert description["signatures"]["predict_float"][-1] == "lesions"
    assert "lesions" not in description["signatures"]["predict_score"]
    for variant in FLOAT_VARIANTS:
        edge = os.path.join(student_export.path, "tflite", tflite.description_name(variant))
        with open(edge, encoding="utf-8") as file:
            outputs = json.load(file)["signatures"]["predict_float"]["outputs"]
        assert outputs["lesions"]["range"] == [0.0, 1.0]
        assert outputs["lesions"]["shape"] == [-1, INPUT_SIZE, INPUT_SIZE]
        with open(edge, encoding="utf-8") as file:
            lesions = json.load(file)["lesions"]
        assert lesions["map"] == "lesion student"
        assert lesions["agreement_with_float32"] == tflite.VARIANT_LESIONS_AGREEMENT[variant]


@pytest.mark.xdist_group("shared_export")
def test_without_a_student_the_lesions_are_the_heatmap(exported, photographs):
    """An export with no lesion student returns its heatmap as ``lesions`` in every format."""
    _, images, _ = photographs
    assert read_description(exported.path)["lesions"]["map"] == "heatmap"
    saved = tf.saved_model.load(exported.path).signatures["predict_float"](
        images=tf.constant(images)
    )
    np.testing.assert_array_equal(saved["lesions"].numpy(), saved["heatmap"].numpy())
    path = os.path.join(exported.path, "tflite", tflite.file_name("float32"))
    lite = Interpreter(model_path=path).get_signature_runner("predict_float")(images=images)
    np.testing.assert_array_equal(lite["lesions"], lite["heatmap"])
    session = onnxruntime.InferenceSession(
        os.path.join(exported.path, "onnx", "drscreen.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"images": images}), strict=True))
    np.testing.assert_array_equal(outputs["lesions"], outputs["heatmap"])


def test_lesions_stay_at_the_input_size_when_the_heatmap_is_pooled(model, student, photographs):
    """heatmap_size 32 pools the heatmap only: the lesions (the student's, or without one the
    heatmap before pooling: its 2x2 means are the pooled heatmap) stay 64 x 64."""
    _, images, _ = photographs
    config = SignatureConfig(heatmap_size=32)
    plain = ScreeningFunctions(model, config).predict(tf.constant(images))
    assert plain["heatmap"].shape == (3, 32, 32) and plain["lesions"].shape == (3, 64, 64)
    pooled = plain["lesions"].numpy().reshape(3, 32, 2, 32, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, plain["heatmap"].numpy(), rtol=1e-5, atol=1e-9)
    with_student = ScreeningFunctions(model, config, student).predict(tf.constant(images))
    expected = _student_maps(student, images, _float_masks(images))
    np.testing.assert_allclose(
        with_student["lesions"].numpy(), expected, atol=1e-4 * _spread(expected)
    )


def test_a_student_of_another_size_is_refused(model):
    """A student taking 32 px images cannot serve a 64 px model: refused by its shapes."""
    with pytest.raises(ValueError, match=r"must map \(N, 64, 64, 3\) images"):
        ScreeningFunctions(model, SignatureConfig(), segmentation_net(32, 1, width=4))


def _run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", *args])
    return exit_info.value.code or 0


def test_cli_exports_the_runs_student(model, student, photographs, tmp_path, capsys):
    """`drscreen export --model RUN_DIR` takes the run's lesions.keras; a student of the
    wrong size is refused by name, exporting nothing."""
    _, images, _ = photographs
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    model.save(run.model_file)
    segmentation_net(32, 1, width=4).save(run.lesions_file)
    base = tmp_path / "base"
    assert _run_cli(f"--model={run.path}", f"--out={base}", "--format=saved_model") == 1
    assert "cannot read lesion model" in capsys.readouterr().err and not base.exists()
    student.save(run.lesions_file)
    assert _run_cli(f"--model={run.path}", f"--out={base}", "--format=saved_model") == 0
    assert read_description(str(base / "1"))["lesions"]["map"] == "lesion student"
    lesions = (
        tf.saved_model.load(str(base / "1"))
        .signatures["predict_float"](images=tf.constant(images))["lesions"]
        .numpy()
    )
    expected = _student_maps(student, images, _float_masks(images))
    np.testing.assert_allclose(lesions, expected, atol=1e-4 * _spread(expected))


def test_drscreen_serve_returns_the_students_lesions(student_export, photographs, tmp_path):
    """gRPC serving_default and predict_float answer the SavedModel's lesions."""
    encoded, images, _ = photographs
    base = tmp_path / "base"
    shutil.copytree(student_export.path, base / "1")
    with drscreen_serve(base, tmp_path / "server.log") as address:
        with GrpcClient(address, "drscreen") as client:
            served = {
                "serving_default": client.predict(encoded, signature="serving_default"),
                "predict_float": client.predict(images, signature="predict_float"),
            }
    direct = tf.saved_model.load(student_export.path).signatures
    for signature, inputs in (("serving_default", encoded), ("predict_float", images)):
        expected = direct[signature](images=tf.constant(inputs))["lesions"].numpy()
        np.testing.assert_allclose(
            served[signature]["lesions"], expected, atol=1e-4 * _spread(expected)
        )
