"""`drscreen evaluate` on a dataset the model was not split from: evaluated whole, at the run's
own validation operating points; image names shared by chance select nothing."""

import csv
import json
import shutil

import keras
import numpy as np
import pytest

from drscreen import cli, models
from drscreen.data import pipeline
from drscreen.data.readers import read_dataset
from drscreen.data.splits import Splits
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation.screening import threshold_for_sensitivity
from drscreen.models.runs import RunDirectory
from drscreen.training.config import DataConfig, ModelConfig, TrainConfig

SIZE = 64


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A run directory (untrained small model, config.json and splits.json of a 16-image
    synthetic benchmark), and a new 40-image benchmark whose names include the run's."""
    root = tmp_path_factory.mktemp("external")
    own, new = root / "own", root / "new"
    write_dataset(SynthConfig.from_preset(n=16, size=SIZE, seed=3), own, 1, progress=False)
    write_dataset(SynthConfig.from_preset(n=40, size=SIZE, seed=8), new, 1, progress=False)
    run = RunDirectory(root / "run")
    run.path.mkdir()
    keras.utils.set_random_seed(5)
    models.build("small", input_size=SIZE, width=4).save(run.model_file)
    TrainConfig(
        model_dir=str(run.path),
        data=DataConfig(data_dir=str(own), val_fraction=0.25, test_fraction=0.25),
        model=ModelConfig(image_size=SIZE),
    ).write(run.config_file)
    splits = Splits.by_patient(read_dataset("synthetic", own), 0.25, 0.25, 0, "test", own)
    splits.write(run.splits_file)
    return root, run, splits


def _evaluate(run, data, out, *flags: str) -> dict:
    argv = ["drscreen", "evaluate", f"--model={run.path}", f"--data={data}", f"--out={out}"]
    argv += ["--gallery=0", "--perturbation_images=0", "--n_bootstrap=10", "--lesion_metrics=off"]
    argv += ["--tta=none"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, *flags])
    assert exit_info.value.code in (0, None), exit_info.value.code
    return json.loads((out / "metrics.json").read_text())


def _predictions(model_file, records) -> tuple[np.ndarray, np.ndarray]:
    """Grades and ŷ of ``records``, computed here without the evaluator."""
    model = keras.saving.load_model(model_file)
    batches = pipeline.dataset_for_evaluation(
        records, pipeline.PipelineConfig(image_size=SIZE, augment=None)
    )
    grades, predictions = [], []
    for batch in batches:
        grades.append(batch["grade"].numpy())
        predictions.append(model(batch["image"], training=False)[:, 0].numpy())
    return np.concatenate(grades), np.concatenate(predictions)


def test_a_new_dataset_is_evaluated_whole_at_the_runs_operating_points(folders, tmp_path):
    """40 new photographs, 16 of whose names are the run's: all 40 are evaluated (not the
    few whose names are the run's test ids), and the operating point is the threshold of the
    run's own validation images, computed here from the model's ŷ on them."""
    root, run, splits = folders
    written = _evaluate(run, root / "new", tmp_path / "eval")
    metrics = written["metrics"]
    assert metrics["evaluated"]["images"] == 40
    with open(tmp_path / "eval" / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == 40
    validation = splits.select(read_dataset("synthetic", root / "own"), "validation", "own")
    assert metrics["validation"]["images"] == len(validation)
    grades, predictions = _predictions(run.model_file, validation)
    expected = threshold_for_sensitivity(grades >= 2, predictions, 0.90)
    point = metrics["screening"]["referable_dr"]["operating_points"]["0.90"]
    assert point["threshold"] == pytest.approx(expected, abs=1e-6)
    evaluated = written["context"]["evaluated images"]
    assert evaluated.startswith(f"all of {root / 'new'}: another dataset than the one")
    assert "16 of its image names coincide with the run's split" in evaluated
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "another dataset than the one the model's split was made from" in report
    assert "the run's own operating points" in report
    assert "**Warning: trained on synthetic photographs — not for clinical use.**" in report


@pytest.fixture(scope="module")
def renamed(folders):
    """12 of the new photographs in the Kaggle layout, named unlike any of the run's."""
    root, _, _ = folders
    other = root / "kaggle"
    (other / "train").mkdir(parents=True)
    rows = (root / "new" / "trainLabels.csv").read_text().splitlines()[1:13]
    for row in rows:
        name = row.split(",")[0]
        shutil.copyfile(root / "new" / "train" / f"{name}.jpeg", other / "train" / f"x{name}.jpeg")
    (other / "trainLabels.csv").write_text("\n".join(["image,level", *(f"x{r}" for r in rows)]))
    return other


@pytest.mark.slow
def test_the_runs_own_dataset_is_still_split(folders, tmp_path):
    """The dataset the split was made from: exactly its test ids, as before."""
    root, run, splits = folders
    metrics = _evaluate(run, root / "own", tmp_path / "eval")["metrics"]
    assert metrics["evaluated"]["images"] == len(splits.ids("test"))


def test_a_changed_training_folder_is_refused(folders, tmp_path):
    """The folder the split was made from, with one grade changed since: refused, naming it
    (evaluating it whole would count its training images)."""
    root, run, _ = folders
    changed = tmp_path / "own"
    shutil.copytree(root / "own", changed)
    splits = Splits.load(run.splits_file)
    moved = RunDirectory(tmp_path / "run")
    shutil.copytree(run.path, moved.path)
    Splits(**{**splits.__dict__, "folder": str(changed)}).write(moved.splits_file)
    labels = changed / "trainLabels.csv"
    rows = labels.read_text().splitlines()
    name, grade = rows[1].split(",")[:2]
    rows[1] = f"{name},{(int(grade) + 1) % 5}"
    labels.write_text("\n".join(rows) + "\n")
    argv = ["drscreen", "evaluate", f"--model={moved.path}", f"--data={changed}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={tmp_path / 'eval'}"])
    assert f"data {changed} is the folder the split" in str(exit_info.value.code)
    assert "images or grades changed since" in str(exit_info.value.code)


def test_another_dataset_has_no_validation_part(folders, tmp_path):
    """--split=validation of another dataset is an error that says why."""
    root, run, _ = folders
    argv = ["drscreen", "evaluate", f"--model={run.path}", f"--data={root / 'new'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={tmp_path / 'eval'}", "--split=validation"])
    assert "so it has no validation part" in str(exit_info.value.code)


def _without_training_data(run: RunDirectory, folder) -> RunDirectory:
    """A copy of ``run`` whose config.json points at training data that is gone."""
    moved = RunDirectory(folder)
    shutil.copytree(run.path, moved.path)
    config = json.loads(moved.config_file.read_text())
    config["data"]["data_dir"] = str(folder / "gone")
    moved.config_file.write_text(json.dumps(config))
    return moved


def test_without_the_runs_validation_images_another_folder_is_asked_for(folders, renamed, tmp_path):
    """The run's training data gone: an error asks for --validation_data."""
    _, run, _ = folders
    moved = _without_training_data(run, tmp_path / "run")
    argv = ["drscreen", "evaluate", f"--model={moved.path}", f"--data={renamed}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--dataset=kaggle", f"--out={tmp_path / 'eval'}"])
    assert "pass --validation_data=FOLDER" in str(exit_info.value.code)


@pytest.mark.slow
def test_names_unlike_the_runs_are_evaluated_whole(folders, renamed, tmp_path):
    """A dataset none of whose names are the run's (refused before), thresholds on
    --validation_data: every image evaluated."""
    _, run, _ = folders
    moved = _without_training_data(run, tmp_path / "run")
    flags = ("--dataset=kaggle", f"--validation_data={renamed}")
    metrics = _evaluate(moved, renamed, tmp_path / "eval", *flags)["metrics"]
    assert metrics["evaluated"]["images"] == metrics["validation"]["images"] == 12
