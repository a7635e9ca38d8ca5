"""End to end: `run` on a tiny synthetic benchmark writes every artefact of a run directory."""

import dataclasses
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from drscreen import models
from drscreen.data.readers import read_dataset
from drscreen.data.splits import Splits
from drscreen.models.calibration import Calibration
from drscreen.models.runs import RunDirectory
from drscreen.training import data as run_data
from drscreen.training.config import (
    DataConfig,
    ModelConfig,
    StudentConfig,
    TrainConfig,
)
from drscreen.training.run import lesion_student, run, write_calibration
from tests.reference import grades_and_predictions, platt_calibration

# one xdist worker builds the shared training run
pytestmark = pytest.mark.xdist_group("trained_run")

TINY_DATA = DataConfig(
    synth_n=16,
    synth_size=64,
    batch_size=4,
    class_rebalancing=False,
    val_fraction=0.25,
    test_fraction=0.25,
)


def test_one_step_run_writes_the_run_directory(trained_run):
    """Generate data, train one heatmap-aware step, evaluate, write metrics and best.keras."""
    run_dir, config, metrics = trained_run.path, trained_run.config, trained_run.metrics
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == config
    splits = Splits.load(run_dir)
    assert splits.made_by == "drscreen.training" and splits.seed == config.seed
    assert metrics["evaluated"]["images"] == len(splits.ids("test"))
    assert metrics["validation"]["images"] == len(splits.ids("validation"))
    sensitivity = metrics["methods"]["sensitivity"]
    assert 0.0 < sensitivity["relevance_mass/all_lesions"] < 1.0
    assert 0.0 < sensitivity["relevance_mass/red_lesions"] < 1.0
    best = keras.saving.load_model(run_dir / "best.keras")
    assert best.input_shape == (None, 64, 64, 3)
    assert (run_dir / "stages" / "0-64px" / "done.json").is_file()
    events = list((run_dir / "logs" / "0-64px" / "heatmaps").glob("events.out.tfevents.*"))
    assert events
    assert any(
        value.tag == "heatmap_overlays"
        for event in tf.compat.v1.train.summary_iterator(str(events[0]))
        for value in event.summary.value
    )


def _split_predictions(trained_run, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Referable labels and best.keras's ŷ on ``split``, computed here."""
    records = read_dataset("synthetic", str(trained_run.path / "data"))
    ids = set(Splits.load(trained_run.path).ids(split))
    found = grades_and_predictions(
        str(trained_run.path / "best.keras"), [r for r in records if r.image_id in ids], 64
    )
    grades, predictions = np.array(list(found.values())).T
    return grades >= 2, predictions


def test_final_metrics_are_scikit_learns_on_the_best_models_grades(trained_run):
    """The test AUC is scikit-learn's on best.keras's ŷ of the test ids, and calibration.json
    is scikit-learn's logistic fit on its validation ŷ (the run's seeds make it fittable)."""
    labels, predictions = _split_predictions(trained_run, "test")
    auc = trained_run.metrics["screening"]["referable_dr"]["auc"]
    assert auc == pytest.approx(roc_auc_score(labels, predictions), abs=1e-9)
    labels, predictions = _split_predictions(trained_run, "validation")
    expected = platt_calibration(predictions, labels)
    section = trained_run.metrics["calibration"]
    assert section["fitted"] == pytest.approx(expected.to_dict(), rel=1e-4)
    written = json.loads((trained_run.path / "calibration.json").read_text())
    assert Calibration.from_dict(written).to_dict() == section["fitted"]
    for split in ("validation", "evaluated"):
        errors = section["expected_calibration_error_by_split"][split]
        assert set(errors) == {"default", "fitted"}
        assert all(0.0 <= error <= 1.0 for error in errors.values())


def test_data_not_matching_the_model_is_refused():
    """A 32-px dataset against a 64-px model fails before training, naming both shapes."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2, 32, 32, 3), np.float32), np.zeros(2, np.float32))
    ).batch(2)
    model = models.build("small", input_size=64, width=2)
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\) but model small expects"):
        run_data.check_matches_model(dataset, model, "training")


def test_write_calibration_writes_only_a_fitted_calibration(tmp_path):
    """A fitted calibration becomes calibration.json with its provenance; none, no file."""
    fitted = {"midpoint": 1.2, "scale": 0.4}
    metrics = {"calibration": {"fitted": fitted}, "validation": {"images": 7}}
    path = write_calibration(RunDirectory(tmp_path), metrics)
    assert path == tmp_path / "calibration.json"
    written = json.loads(path.read_text())
    assert written == {**fitted, "fitted_on": "validation", "images": 7}
    assert Calibration.from_dict(written) == Calibration(1.2, 0.4)
    unfitted = {"calibration": {"fitted": None, "reason": "all 4 labels are 0"}}
    assert write_calibration(RunDirectory(tmp_path / "other"), unfitted) is None
    assert not (tmp_path / "other").exists()


def test_a_run_directory_holding_another_run_is_refused(tmp_path):
    """Training checks config.json itself: a Python caller cannot overwrite another run."""
    first = TrainConfig(model_dir=str(tmp_path), epochs=3)
    first.write(RunDirectory(tmp_path).config_file)
    with pytest.raises(ValueError, match=r"other settings \(epochs\)"):
        run(TrainConfig(model_dir=str(tmp_path), epochs=4))


def test_a_setting_refused_before_training_writes_no_run_record(tmp_path):
    """A batch larger than the training split is refused before config.json and
    splits.json are written, so the corrected command is not refused as another run."""
    data = DataConfig(**{**TINY_DATA.__dict__, "data_dir": str(tmp_path / "synth")})
    wrong = TrainConfig(
        model_dir=str(tmp_path / "run"),
        data=dataclasses.replace(data, batch_size=64),
        model=ModelConfig(model="small", image_size=64, width=2),
        verbose=0,
    )
    with pytest.raises(ValueError, match="--batch_size=64 exceeds the"):
        run(wrong)
    run_dir = RunDirectory(tmp_path / "run")
    assert not run_dir.config_file.exists() and not run_dir.splits_file.exists()
    dataclasses.replace(wrong, data=data).check_continues(run_dir.config_file)


def test_a_run_whose_test_split_has_one_class_finishes(tmp_path, capsys):
    """Every photograph of grade 0: training finishes and writes its model and metrics; the
    AUCs and the calibration that cannot be computed are named with the reason, no error."""
    data = DataConfig(**{**TINY_DATA.__dict__, "data_dir": str(tmp_path / "synth")})
    folder = run_data.ensure_synthetic(data, tmp_path / "run")
    labels = folder / "trainLabels.csv"
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join([rows[0], *(f"{row.split(',')[0]},0" for row in rows[1:])]))
    config = TrainConfig(
        model_dir=str(tmp_path / "run"),
        data=data,
        model=ModelConfig(model="small", image_size=64, width=2),
        epochs=1,
        steps_per_epoch=1,
        heatmap_images=0,
        verbose=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = run(config)
    # the validation set is read to its end each epoch: no "ran out of data" warning
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    run_dir = RunDirectory(tmp_path / "run")
    assert run_dir.model_file.is_file() and run_dir.metrics_file.is_file()
    assert metrics["screening"] == {
        "skipped": "the evaluated images are all negative for referable_dr"
    }
    assert metrics["validation"]["referable_dr_auc"] is None
    assert metrics["calibration"]["fitted"] is None
    assert not run_dir.calibration_file.exists()
    printed = capsys.readouterr().out
    assert "test image-level metrics skipped: the evaluated images are all negative" in printed


def test_a_run_with_a_student_writes_lesions_keras_and_its_row(tmp_path, capsys):
    """--student_enabled: lesions.keras (a whole file, the stale partial of a killed attempt
    replaced), the student's own row in metrics.json; a resumed run keeps the student. (One
    step leaves the teacher's maps near-flat: quantile 0 makes the levels reachable.)"""
    config = TrainConfig(
        model_dir=str(tmp_path / "run"),
        data=DataConfig(**{**TINY_DATA.__dict__, "data_dir": str(tmp_path / "synth")}),
        model=ModelConfig(model="small", image_size=64, width=2),
        student=StudentConfig(
            student_enabled=True,
            student_positive_quantile=0.0,
            student_negative_quantile=0.0,
            student_width=2,
            student_epochs=1,
            student_batch_size=4,
        ),
        epochs=1,
        steps_per_epoch=1,
        heatmap_images=0,
        verbose=0,
    )
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.path.mkdir()
    stale = run_dir.path / ".partial-lesions.keras"
    stale.write_bytes(b"half of a student")
    metrics = run(config)
    assert not stale.exists()
    student = run_dir.lesion_model(64)
    assert student.output_shape == (None, 64, 64, 1)
    lesions = metrics["methods"]["lesions"]
    assert 0.0 <= lesions["relevance_mass/all_lesions"] <= 1.0
    assert (
        lesions["relevance_mass/all_lesions"]
        != metrics["methods"]["sensitivity"]["relevance_mass/all_lesions"]
    )
    assert metrics["run"]["lesion_student"] == "lesions.keras"
    written = run_dir.lesions_file.stat().st_mtime_ns
    capsys.readouterr()
    splits = run_data.load_splits(config.data, run_dir, config.seed)
    kept = lesion_student(config, keras.saving.load_model(run_dir.model_file), splits, run_dir)
    assert run_dir.lesions_file.stat().st_mtime_ns == written
    assert "lesions.keras already written; keeping it" in capsys.readouterr().err
    for a, b in zip(kept.get_weights(), student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
