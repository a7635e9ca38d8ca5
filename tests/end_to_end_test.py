"""The whole product on a tiny model: synthetic data → train → evaluate → export → serve → query."""

import json
import socket

import numpy as np
import pytest
import tensorflow as tf

from drscreen.commands.evaluate import EvaluationConfig, evaluate
from drscreen.export.exporter import ExportConfig, export
from drscreen.models.runs import load_model
from drscreen.serving.client import GrpcClient, RestClient
from drscreen.serving.server import ModelServer, ServerConfig
from drscreen.training import config
from drscreen.training.run import run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(model_dir) -> None:
    run(
        config.TrainConfig(
            model_dir=str(model_dir),
            data=config.DataConfig(
                synth_n=16,
                synth_size=64,
                batch_size=4,
                class_rebalancing=False,
                val_fraction=0.25,
                test_fraction=0.25,
            ),
            model=config.ModelConfig(model="small", image_size=64, width=4),
            heatmap=config.HeatmapConfig(heatmap_weight=0.1),
            epochs=1,
            steps_per_epoch=1,
            heatmap_images=1,
            verbose=0,
        )
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    _train(model_dir)
    return model_dir


def test_training_writes_a_loadable_model_and_metrics(trained_run):
    """One heatmap-aware training step leaves best.keras, config.json and metrics.json."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.0 <= metrics["screening"]["referable_dr"]["auc"] <= 1.0
    assert (trained_run / "config.json").is_file() and (trained_run / "splits.json").is_file()
    model = load_model(str(trained_run))
    assert model.output_shape == (None, 1)


def test_evaluate_export_serve_query_agree(trained_run, tmp_path):
    """The served heatmap and score equal the SavedModel's, and evaluation reports on them."""
    report_dir = tmp_path / "report"
    metrics = evaluate(
        EvaluationConfig(
            model=str(trained_run),
            data=str(trained_run / "data"),
            out=str(report_dir),
            validation_data=str(trained_run / "data"),
            split="all",
            n_bootstrap=50,
            perturbation_images=2,
            progress=False,
        )
    )
    assert 0.0 <= metrics["screening"]["referable_dr"]["auc"] <= 1.0
    assert metrics["methods"]["sensitivity"]["lesions"]["microaneurysm"]["images"] == 16
    assert (report_dir / "metrics.json").is_file() and (report_dir / "roc.png").is_file()

    export_base = tmp_path / "export"
    result = export(
        load_model(str(trained_run)), str(export_base), ExportConfig(formats=("saved_model",))
    )
    jpeg = sorted((trained_run / "data" / "train").glob("*.jpeg"))[0].read_bytes()
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
