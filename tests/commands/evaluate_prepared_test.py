"""`drscreen evaluate` reads the run's split: exactly the held-out images, from a dataset
folder or from the TFRecords of `drscreen prepare`."""

import csv
import json

import keras
import pytest

from drscreen import cli, models
from drscreen.data.readers import read_dataset
from drscreen.data.splits import Splits
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.training import config
from drscreen.training.run import run
from tests.spread import assert_within_spread

SIZE = 64


def _cli(*argv: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", *argv])
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """24 synthetic images (12 patients), and `drscreen prepare` of them at 64 px."""
    raw = tmp_path_factory.mktemp("raw")
    write_dataset(SynthConfig.from_preset(n=24, size=SIZE, seed=5), raw, 1, progress=False)
    out = tmp_path_factory.mktemp("prepared")
    _cli("prepare", "--dataset=synthetic", f"--data={raw}", f"--out={out}", f"--size={SIZE}")
    return raw, out


@pytest.fixture(scope="module")
def tfrecord_run(prepared, tmp_path_factory):
    """One training step on the prepared TFRecords."""
    _, folder = prepared
    model_dir = tmp_path_factory.mktemp("run")
    run(
        config.TrainConfig(
            model_dir=str(model_dir),
            data=config.DataConfig(
                data_source="tfrecords", data_dir=str(folder), batch_size=4, class_rebalancing=False
            ),
            model=config.ModelConfig(model="small", image_size=SIZE, width=2),
            epochs=1,
            steps_per_epoch=1,
            heatmap_images=0,
            verbose=0,
        )
    )
    return model_dir


@pytest.fixture(scope="module")
def tfrecord_evaluation(prepared, tfrecord_run, tmp_path_factory):
    """`drscreen evaluate` of the TFRecord run on its TFRecords: the output folder."""
    _, folder = prepared
    out = tmp_path_factory.mktemp("eval")
    _evaluate(tfrecord_run, folder, out, "--gallery=2")
    return out


def _evaluated_ids(out) -> list[str]:
    with open(out / "predictions.csv") as f:
        return [row["image_id"] for row in csv.DictReader(f)]


def _evaluate(model, data, out, *flags: str) -> dict:
    _cli(
        "evaluate",
        f"--model={model}",
        f"--data={data}",
        f"--out={out}",
        "--gallery=0",
        "--perturbation_images=0",
        "--n_bootstrap=10",
        *flags,
    )
    return json.loads((out / "metrics.json").read_text())


def test_tfrecord_run_is_evaluated_on_its_held_out_tfrecords(
    prepared, tfrecord_run, tfrecord_evaluation
):
    """Trained on prepared TFRecords, evaluated on them: exactly the run's test ids (which
    are prepare's), thresholds on its validation ids, lesion masks read from the examples."""
    _, folder = prepared
    splits = Splits.load(tfrecord_run)
    assert splits == Splits.load(folder)  # the run's split is the one prepare made
    written = json.loads((tfrecord_evaluation / "metrics.json").read_text())
    assert sorted(_evaluated_ids(tfrecord_evaluation)) == sorted(splits.ids("test"))
    metrics = written["metrics"]
    assert metrics["validation"]["images"] == len(splits.ids("validation"))
    lesions = metrics["methods"]["sensitivity"]["lesions"]
    assert lesions["all_lesions"]["images"] == len(splits.ids("test"))
    assert "splits.json" in written["context"]["evaluated images"]
    report_text = (tfrecord_evaluation / "report.md").read_text()
    assert "](gallery.png)" in report_text
    # a prepare folder keeps no original photograph: the case panel shows the crop, and says so
    assert "](gallery/case_01.png)" in report_text
    assert "a prepare folder keeps no original photograph" in report_text
    # Training's final metrics and the command are one computation on the same images.
    trained = json.loads((tfrecord_run / "metrics.json").read_text())
    for key in (
        "relevance_mass/red_lesions",
        "relevance_mass/all_lesions",
        "froc_score/red_lesions",
    ):
        assert metrics["methods"]["sensitivity"][key] == pytest.approx(
            trained["methods"]["sensitivity"][key], rel=1e-6
        )
    assert metrics["calibration"]["fitted"] == pytest.approx(trained["calibration"]["fitted"])


def test_the_same_run_on_the_raw_folder_gives_the_same_images(
    prepared, tfrecord_run, tfrecord_evaluation, tmp_path
):
    """The dataset folder the TFRecords came from: the same test ids and, image by image, the
    same predictions (prepare stores the pixels the pipeline decodes), to a hundredth of the
    smallest gap between two images' predictions, so two images swapped fail."""
    raw, _ = prepared
    _evaluate(tfrecord_run, raw, tmp_path / "raw", "--lesion_metrics=off")

    def rows(out):
        with open(out / "predictions.csv") as f:
            return {row["image_id"]: float(row["predicted_grade"]) for row in csv.DictReader(f)}

    from_tfrecords, from_raw = rows(tfrecord_evaluation), rows(tmp_path / "raw")
    assert from_tfrecords.keys() == from_raw.keys()
    ids = sorted(from_raw)
    assert_within_spread(
        [from_tfrecords[i] for i in ids], [from_raw[i] for i in ids], 0.01, "predicted grade"
    )


def test_a_split_across_prepare_shards_is_read_by_image_id(prepared, tmp_path):
    """A run whose split differs from prepare's (another seed): its test ids, taken from
    whichever shards hold them, and nothing else."""
    raw, folder = prepared
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.utils.set_random_seed(3)
    models.build("small", input_size=SIZE, width=2).save(run_dir / "best.keras")
    splits = Splits.by_patient(read_dataset("synthetic", raw), 0.25, 0.25, 9, "test", raw)
    splits.write(run_dir)
    prepare_splits = Splits.load(folder)
    held_out = set(splits.ids("test"))
    assert len({name for name in ("train", "validation", "test")
                if held_out & set(prepare_splits.ids(name))}) > 1  # fmt: skip
    _evaluate(run_dir, folder, tmp_path / "eval", "--lesion_metrics=off")
    assert sorted(_evaluated_ids(tmp_path / "eval")) == sorted(held_out)


def test_split_flags_are_refused_when_the_run_has_a_split(prepared, tfrecord_run, tmp_path):
    """The run's splits.json fixes the split: fractions on the command line are an error."""
    _, folder = prepared
    with pytest.raises(SystemExit, match="splits.json fixes the split"):
        cli.main(
            ["drscreen", "evaluate", f"--model={tfrecord_run}", f"--data={folder}",
             f"--out={tmp_path}", "--val_fraction=0.3"]
        )  # fmt: skip
