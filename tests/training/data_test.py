"""Reusing an existing synthetic benchmark: silent when it matches the flags, warned otherwise."""

import dataclasses
import json

import pytest

from drscreen.data.synthetic.writer import CONFIG_FILE
from drscreen.models.runs import RunDirectory
from drscreen.training.config import DataConfig
from drscreen.training.data import ensure_synthetic, load_splits


def _fake_benchmark(folder, n, size):
    folder.mkdir()
    config = {"n": n, "size": size, "seed": 1, "difficulty": "standard"}
    (folder / CONFIG_FILE).write_text(json.dumps({"config": config}))


def test_matching_benchmark_is_reused_silently(tmp_path, capsys):
    _fake_benchmark(tmp_path / "data", 900, 128)
    config = DataConfig(synth_n=900, synth_size=128, synth_seed=1)
    assert ensure_synthetic(config, tmp_path) == tmp_path / "data"
    assert capsys.readouterr().err == ""


def test_benchmark_from_other_flags_is_reused_with_a_warning(tmp_path, capsys):
    _fake_benchmark(tmp_path / "old", 600, 256)
    config = DataConfig(data_dir=str(tmp_path / "old"), synth_n=900, synth_size=128, synth_seed=1)
    assert ensure_synthetic(config, tmp_path / "run") == tmp_path / "old"
    err = capsys.readouterr().err
    assert "n 600 (flag: 900), size 256 (flag: 128)" in err
    assert "seed" not in err


def test_benchmark_with_other_lesion_sizes_is_reused_with_a_warning(tmp_path, capsys):
    """--synth_lesion_size multiplies the preset's lesion_size (standard: 1.0)."""
    folder = tmp_path / "data"
    folder.mkdir()
    config = {"n": 900, "size": 128, "seed": 1, "difficulty": "standard"}
    config["params"] = {"lesion_size": 1.0}
    (folder / CONFIG_FILE).write_text(json.dumps({"config": config}))
    flags = DataConfig(synth_n=900, synth_size=128, synth_seed=1, synth_lesion_size=2.0)
    ensure_synthetic(flags, tmp_path)
    assert "params.lesion_size 1.0 (flag: 2.0)" in capsys.readouterr().err


def test_shuffled_grades_permute_the_training_split_only(tmp_path):
    """--shuffled_grades: the training images keep their order and the multiset of grades but
    not the pairing (seeded); validation and test keep their true grades."""
    config = DataConfig(data_dir=str(tmp_path / "data"), synth_n=60, synth_size=64)
    for name in "abc":
        (tmp_path / name).mkdir()
    true = load_splits(config, RunDirectory(tmp_path / "a"), seed=3)
    control = load_splits(
        dataclasses.replace(config, shuffled_grades=True), RunDirectory(tmp_path / "b"), seed=3
    )
    again = load_splits(
        dataclasses.replace(config, shuffled_grades=True), RunDirectory(tmp_path / "c"), seed=3
    )
    true_grades = [record.grade for record in true.train]
    shuffled = [record.grade for record in control.train]
    assert [r.image_id for r in control.train] == [r.image_id for r in true.train]
    assert sorted(shuffled) == sorted(true_grades) and shuffled != true_grades
    assert shuffled == [record.grade for record in again.train]
    assert control.validation == true.validation and control.test == true.test


def test_shuffled_grades_refuse_prepared_data():
    with pytest.raises(ValueError, match="--shuffled_grades needs --data_source=synthetic"):
        DataConfig(data_source="tfrecords", data_dir="x", shuffled_grades=True)
