"""The reference's tuning study: its schedule by hand, the search, its cache and its length."""

import json

import pytest

from drscreen.benchmark import reference, run, tuning
from drscreen.benchmark.config import BenchmarkConfig
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation.runner import RunnerConfig


def test_schedule_doubles_the_last_checkpoint_up_to_the_limit():
    assert tuning.schedule((10, 20, 40), 640) == (10, 20, 40, 80, 160, 320, 640)
    assert tuning.schedule((10, 20, 40)) == (10, 20, 40, 80, 160, 320)
    assert tuning.schedule((10, 20, 40), 100) == (10, 20, 40, 80)
    assert tuning.schedule((10, 20, 40), 30) == (10, 20)


def test_steps_change_one_setting_each():
    start = tuning.start_config(8)
    assert tuning.steps(start) == (
        ("width", 16),
        ("depth", 3),
        ("loss", "dice_bce"),
        ("augmentation", False),
    )


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=24, size=64, seed=3), folder, 1, progress=False)
    records = read_dataset("synthetic", folder)
    return records[:16], records[16:]


@pytest.mark.slow
def test_search_keeps_only_changes_that_help_and_resumes_from_its_cache(splits, tmp_path):
    """Five trials in order; the chosen configuration is the best trial's (or the first
    guess), trained through the longer schedule; a second study reads every trial back and
    trains only the length phase."""
    train, validation = splits
    config = RunnerConfig(64, batch_size=8, perturbation_images=0, progress=False)
    lines: list[str] = []
    kwargs = dict(start=tuning.start_config(4), checkpoints=(1, 2), max_epochs=4, log=lines.append)
    result, model = tuning.tune_reference(
        train, validation, config, (0.0,), 0, tmp_path / "trials", **kwargs
    )
    labels = [trial.config.label for trial in result.trials]
    assert labels[0] == "w4 d2 focal aug" and len(labels) == 5
    assert len(list((tmp_path / "trials").glob("*.json"))) == 5
    best = result.trials[0]
    for trial in result.trials[1:]:
        if trial.froc > best.froc + tuning.MIN_GAIN:
            best = trial
    chosen = result.chosen
    assert (chosen.config.width, chosen.config.depth, chosen.config.loss) == (
        best.config.width,
        best.config.depth,
        best.config.loss,
    )
    assert set(chosen.curve) <= {1, 2, 4} and chosen.config.epochs in chosen.curve
    assert chosen.froc == chosen.curve[chosen.config.epochs][0]
    later = [froc for epochs, (froc, _) in chosen.curve.items() if epochs > chosen.config.epochs]
    assert all(froc <= chosen.froc + tuning.MIN_GAIN for froc in later)
    assert result.flattened == (chosen.config.epochs < max(chosen.curve))
    assert (
        model.count_params()
        == reference.reference_net(64, chosen.config.width, chosen.config.depth).count_params()
    )
    written = result.to_dict()
    assert written["blocks"] == list(tuning.schedule((1, 2), chosen.config.epochs))
    json.dumps(written)
    lines.clear()
    tuning.tune_reference(train, validation, config, (0.0,), 0, tmp_path / "trials", **kwargs)
    measured = {line.split(",")[0] for line in lines}
    assert measured == {f"reference {chosen.config.label}"}  # only the length phase trains
    assert (written["checkpoints"], written["max_epochs"]) == ([1, 2], 4)
    lines.clear()
    other = kwargs | {"checkpoints": (1,), "max_epochs": 2}
    tuning.tune_reference(train, validation, config, (0.0,), 0, tmp_path / "trials", **other)
    assert len(list((tmp_path / "trials").glob("*.json"))) == 10  # measured again at (1,)


def test_a_tuning_made_with_other_checkpoints_is_refused_by_name(tmp_path):
    """``reference_tuning.json`` from another --reference_checkpoints or
    --reference_max_epochs is not used for this run's references: the message names both."""
    (tmp_path / "reference_tuning.json").write_text(
        json.dumps({"checkpoints": [10, 20, 40], "max_epochs": 320, "chosen": {}, "blocks": []})
    )
    config = BenchmarkConfig(
        out=str(tmp_path), reference_checkpoints=(10, 20), reference_max_epochs=80
    )
    with pytest.raises(ValueError, match=r"\[10, 20, 40\].*320.*\[10, 20\].*80"):
        run.reference_config(config, sources={})


def test_reference_max_epochs_below_the_last_checkpoint_is_refused():
    with pytest.raises(ValueError, match="--reference_max_epochs=20 must be >= the last"):
        BenchmarkConfig(out="x", reference_checkpoints=(10, 40), reference_max_epochs=20)


def test_a_student_lesion_level_below_the_background_level_is_refused():
    with pytest.raises(ValueError, match=r"--student_positive_quantile=0.3 must be in \[0.5, 1\]"):
        BenchmarkConfig(out="x", student_positive_quantile=0.3)
