"""`scripts/train.py --help` lists every training flag; a flag refused leaves no run behind."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drscreen.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _leaf_names(config_class) -> list[str]:
    names = []
    for field in dataclasses.fields(config_class):
        if dataclasses.is_dataclass(field.type):
            names += _leaf_names(field.type)
        else:
            names.append(field.name)
    return names


def _train(*flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "scripts/train.py", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_help_lists_every_training_flag():
    """Every field of TrainConfig (nested ones too) is a flag shown by --help."""
    shown = _train("--help").stdout
    names = _leaf_names(TrainConfig)
    assert len(names) > 30
    missing = [n for n in names if f"--{n}:" not in shown and f"--[no]{n}:" not in shown]
    assert not missing


@pytest.mark.slow  # the refusal itself: tests/training/config_test.py
def test_an_infinite_learning_rate_is_refused_before_the_run_directory(tmp_path):
    """--learning_rate=inf is a usage error naming the flag; no run directory is written."""
    result = _train(f"--model_dir={tmp_path / 'run'}", "--learning_rate=inf")
    assert result.returncode != 0
    assert "--learning_rate=inf must be a finite number > 0" in result.stderr
    assert not (tmp_path / "run").exists()
