"""Shared pytest set-up: quiet, deterministic TensorFlow, the `slow` marker, no skip under CI,
and the session fixtures several test folders share (built once per xdist worker):

- ``model``: `tests.fixture_model.trained_model`, a small network whose grades spread across
  the photographs the tests show it, so that a test mixing up two photographs, ignoring an
  orientation or answering a constant fails;
- ``photographs``: three of those photographs, encoded and pre-processed;
- ``exported``: that model exported once in every format;
- ``trained_run``: one tiny heatmap-aware training run on synthetic data.
"""

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest  # noqa: E402

if TYPE_CHECKING:
    from drscreen.training.config import TrainConfig

# TensorFlow is imported by the fixtures, not here: a conftest is imported before pytest
# captures output in an xdist worker, and TensorFlow's start-up notices would reach the
# terminal.


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def _skip_fails(item, report) -> bool:
    """Whether a skipped ``report`` must fail: under ``CI=true`` everything must run but the
    `slow` tests left out without --run-slow."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return False
    if os.environ.get("CI", "").lower() != "true":
        return False
    return item is None or not ("slow" in item.keywords and not item.config.getoption("--run-slow"))


def _as_failure(report) -> None:
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where no requirement may be missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that skips under CI fails: a browser or module missing from the CI machine
    must not pass unnoticed."""
    outcome = yield
    report = outcome.get_result()
    if _skip_fails(item, report):
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module that skips at collection (``importorskip`` at its top) fails under CI too."""
    outcome = yield
    report = outcome.get_result()
    if _skip_fails(None, report):
        _as_failure(report)


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def model():
    """`tests.fixture_model.trained_model`: grades that spread across photographs."""
    from tests import fixture_model

    return fixture_model.trained_model()


@pytest.fixture(scope="session")
def photographs():
    """Three synthetic JPEG photographs (grades 4, 0, 3), their cropped images and FOV masks."""
    from tests import fixture_model

    return fixture_model.fixture_photographs()


@pytest.fixture(scope="session")
def exported(model, tmp_path_factory):
    """``base/1``: SavedModel, every TFLite variant and ONNX of `model`, scored with
    `fixture_model.EXPORT_CALIBRATION`. int8 is calibrated on the model's training
    photographs (an export calibrates on the photographs of seed ``seed + 1``), whose grades
    span the fixture photographs': its test measures quantisation, not whether synthetic
    photographs cover a model's range."""
    from drscreen.export import ExportConfig, SignatureConfig, export
    from tests import fixture_model

    config = ExportConfig(
        signature=SignatureConfig(calibration=fixture_model.EXPORT_CALIBRATION),
        calibration_images=fixture_model.TRAINING_PHOTOGRAPHS,
        seed=fixture_model.PHOTOGRAPH_SEED - 1,
        calibration_source="tests/conftest.py",
    )
    base = str(tmp_path_factory.mktemp("export_base"))
    return export(model, base, config, source="fixture")


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished training run: its directory, the config it ran and the metrics it returned."""

    path: Path
    config: "TrainConfig"
    metrics: dict


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """One heatmap-aware training step of the small network on 16 synthetic 64-px images
    (its data in ``RUN_DIR/data``). The seeds are chosen so that the validation and test
    splits hold referable and non-referable eyes and the validation grades rise with
    referability: the calibration is fitted and every AUC is a number."""
    from drscreen.training.config import DataConfig, HeatmapConfig, ModelConfig, TrainConfig
    from drscreen.training.run import run
    from tests.fixture_model import INPUT_SIZE

    path = tmp_path_factory.mktemp("trained_run")
    config = TrainConfig(
        model_dir=str(path),
        seed=0,
        data=DataConfig(
            synth_n=16,
            synth_size=INPUT_SIZE,
            synth_seed=2,
            batch_size=4,
            class_rebalancing=False,
            val_fraction=0.25,
            test_fraction=0.25,
        ),
        model=ModelConfig(model="small", image_size=INPUT_SIZE, width=4),
        heatmap=HeatmapConfig(heatmap_weight=0.1),
        epochs=1,
        steps_per_epoch=1,
        heatmap_images=2,
        verbose=0,
    )
    return TrainedRun(path, config, run(config))
