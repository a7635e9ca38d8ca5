"""The whole product on a tiny model: synthetic data → train → evaluate → export → serve → query."""

import json
import socket

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from drscreen.commands.evaluate import EvaluationConfig, evaluate
from drscreen.data.readers import read_dataset
from drscreen.export.exporter import ExportConfig, export
from drscreen.models.runs import load_model
from drscreen.serving.client import GrpcClient, RestClient
from drscreen.serving.server import ModelServer, ServerConfig
from tests.reference import grades_and_predictions

# one xdist worker builds the shared training run
pytestmark = pytest.mark.xdist_group("trained_run")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_training_writes_a_loadable_model_and_metrics(trained_run):
    """One heatmap-aware training step leaves best.keras, config.json and metrics.json."""
    metrics = json.loads((trained_run.path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(trained_run.metrics))
    assert (trained_run.path / "config.json").is_file()
    assert (trained_run.path / "splits.json").is_file()
    model = load_model(str(trained_run.path))
    assert model.output_shape == (None, 1)


def test_evaluate_export_serve_query_agree(trained_run, tmp_path):
    """Evaluation reports scikit-learn's AUC of the model's grades; the served heatmap and
    score equal the SavedModel's."""
    run_dir = trained_run.path
    report_dir = tmp_path / "report"
    metrics = evaluate(
        EvaluationConfig(
            model=str(run_dir),
            data=str(run_dir / "data"),
            out=str(report_dir),
            validation_data=str(run_dir / "data"),
            split="all",
            n_bootstrap=50,
            perturbation_images=2,
            progress=False,
        )
    )
    found = grades_and_predictions(
        load_model(str(run_dir)), read_dataset("synthetic", str(run_dir / "data")), 64
    )
    grades, predictions = np.array(list(found.values())).T
    assert metrics["screening"]["referable_dr"]["auc"] == pytest.approx(
        roc_auc_score(grades >= 2, predictions), abs=1e-9
    )
    assert metrics["methods"]["sensitivity"]["lesions"]["microaneurysm"]["images"] == 16
    assert (report_dir / "metrics.json").is_file() and (report_dir / "roc.png").is_file()

    export_base = tmp_path / "export"
    result = export(
        load_model(str(run_dir)), str(export_base), ExportConfig(formats=("saved_model",))
    )
    jpeg = sorted((run_dir / "data" / "train").glob("*.jpeg"))[0].read_bytes()
    expected = tf.saved_model.load(str(result.path)).signatures["serving_default"](
        images=tf.constant([jpeg])
    )

    server = ModelServer(
        ServerConfig(
            model_name="drscreen",
            model_base_path=str(export_base),
            port=_free_port(),
            rest_api_port=_free_port(),
        )
    )
    server.start()
    try:
        grpc_answer = GrpcClient(f"127.0.0.1:{server.config.port}", "drscreen").predict([jpeg])
        rest_answer = RestClient(
            f"http://127.0.0.1:{server.config.rest_api_port}", "drscreen"
        ).predict([jpeg])
    finally:
        server.stop()
    for answer in (grpc_answer, rest_answer):
        for name in ("score", "grade", "heatmap"):
            np.testing.assert_allclose(answer[name], expected[name].numpy(), rtol=1e-5, atol=1e-7)
    assert grpc_answer["heatmap"].shape[1:] == (64, 64)
    assert np.count_nonzero(grpc_answer["heatmap"]) > 0
