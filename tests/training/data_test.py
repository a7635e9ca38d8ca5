"""Reusing an existing synthetic benchmark: silent when it matches the flags, warned otherwise."""

import json

from drscreen.data.synthetic.writer import CONFIG_FILE
from drscreen.training.config import DataConfig
from drscreen.training.data import ensure_synthetic


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
