"""A run interrupted after an epoch and resumed equals the uninterrupted run exactly."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from drscreen.training import run as run_module
from drscreen.training.config import HeatmapConfig, ModelConfig, TrainConfig
from drscreen.training.run import run
from tests.training.run_test import TINY_DATA

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = ("seconds", "seconds_per_image", "model_dir")
"""Keys whose values are wall-clock times or the run's own folder."""


def _without_timings(values):
    if isinstance(values, dict):
        return {k: _without_timings(v) for k, v in values.items() if k not in TIMINGS}
    if isinstance(values, list):
        return [_without_timings(v) for v in values]
    return values


class _Interrupted(Exception):
    pass


class _InterruptAfter(keras.callbacks.Callback):
    """Stops training once the backup of epoch ``epoch`` is written (it runs last)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise _Interrupted


def _config(model_dir: Path, data_dir: Path) -> TrainConfig:
    return TrainConfig(
        model_dir=str(model_dir),
        data=dataclasses.replace(TINY_DATA, data_dir=str(data_dir)),
        model=ModelConfig(model="small", image_size=64, width=2),
        heatmap=HeatmapConfig(heatmap_weight=0.1),
        epochs=3,
        steps_per_epoch=2,
        heatmap_images=0,
        verbose=0,
    )


def test_interrupted_after_epoch_2_and_resumed_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    """Three epochs of a tiny heatmap-aware run with dropout and augmentation: stopped after
    epoch 2's backup and resumed, its metrics.json and best model equal those of a run that
    was never stopped (timings aside)."""
    data = tmp_path / "data"
    whole = run(_config(tmp_path / "whole", data))
    callbacks = run_module.training_callbacks
    monkeypatch.setattr(
        run_module,
        "training_callbacks",
        lambda *args, **kwargs: [*callbacks(*args, **kwargs), _InterruptAfter(2)],
    )
    with pytest.raises(_Interrupted):
        run(_config(tmp_path / "resumed", data))
    monkeypatch.setattr(run_module, "training_callbacks", callbacks)
    resumed = run(_config(tmp_path / "resumed", data))
    assert _without_timings(resumed) == _without_timings(whole)
    files = {
        name: [
            json.loads((tmp_path / run_dir / name).read_text()) for run_dir in ("whole", "resumed")
        ]
        for name in ("metrics.json", "stages/0-64px/best.json")
    }
    for name, (first, second) in files.items():
        assert _without_timings(first) == _without_timings(second), name
    history = [
        np.genfromtxt(tmp_path / run_dir / "stages" / "0-64px" / "history.csv", delimiter=",",
                      names=True)
        for run_dir in ("whole", "resumed")
    ]  # fmt: skip
    # every epoch's losses, the resumed epoch 3 included: a logged loss once differed in its
    # last float32 digit (4.1334982 vs 4.1334977: the order of a threaded sum) while the
    # models and metrics stayed equal; a wrong data stream moves them in the 2nd digit
    assert history[0].dtype.names == history[1].dtype.names
    for column in history[0].dtype.names:
        np.testing.assert_allclose(history[1][column], history[0][column], rtol=1e-6)
    card = json.loads((tmp_path / "whole" / "model_card.json").read_text())
    assert card["warning"] == "trained on synthetic photographs — not for clinical use"
    held_out = card["evaluation"]["test_referable_dr_auc"]
    assert held_out.get("value") == whole["screening"].get("referable_dr", {}).get("auc")


def _train(model_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags",
         f"--model_dir={model_dir}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_smoke_flags_killed_at_epoch_2_and_resumed_give_the_same_metrics(tmp_path):
    """configs/smoke.flags as a user runs it: SIGKILL once epoch 2's backup is written, run
    again; metrics.json equals that of an uninterrupted run (timings aside)."""
    whole = _train(tmp_path / "whole")
    assert whole.wait(timeout=600) == 0, whole.stderr.read()[-2000:]
    killed_dir = tmp_path / "killed"
    metadata = killed_dir / "stages" / "0-64px" / "backup" / "training_metadata.json"
    killed = _train(killed_dir)
    deadline = time.monotonic() + 600
    while killed.poll() is None and time.monotonic() < deadline:
        if metadata.is_file() and json.loads(metadata.read_text() or "{}").get("epoch") == 2:
            break
        time.sleep(0.005)
    assert killed.poll() is None, "training ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert json.loads(metadata.read_text())["epoch"] == 2
    assert not (killed_dir / "metrics.json").exists()
    resumed = _train(killed_dir)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert "resuming stage 0-64px from epoch 2 of 3" in stderr
    first, second = (
        json.loads((folder / "metrics.json").read_text())
        for folder in (tmp_path / "whole", killed_dir)
    )
    assert _without_timings(first) == _without_timings(second)
