"""`scripts/train.py` as a user runs it: bad flags, kill -9 and resume, NaN stop."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["scripts/train.py", "--flagfile=configs/smoke.flags", "--heatmap_images=0"]


def _train(model_dir: Path, *flags: str, **kwargs) -> subprocess.Popen:
    """scripts/train.py as a user starts it (no TF_CPP_MIN_LOG_LEVEL: the script quiets
    TensorFlow itself)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, *SMOKE, f"--model_dir={model_dir}", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_bad_flag_is_a_usage_error_before_training(tmp_path):
    """An invalid value stops with a message naming the flag, and no TensorFlow log line;
    nothing is trained."""
    process = _train(tmp_path / "run", "--batch_size=0")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "--batch_size=0 must be positive" in stderr
    assert not (tmp_path / "run" / "stages").exists()
    tensorflow_lines = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog")
    assert not [line for line in stderr.splitlines() if tensorflow_lines.search(line)]


def test_unknown_model_is_refused_before_anything_is_written(tmp_path):
    """--model=nosuch names the flag and the known models; the run directory is not created,
    so the corrected command starts a fresh run."""
    process = _train(tmp_path / "run", "--model=nosuch")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "--model" in stderr and "nosuch" in stderr and "oO_netA" in stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_kill_9_then_resume_continues_the_epoch_counter(tmp_path):
    """Killed after its first checkpoint, a rerun resumes there instead of restarting at 0."""
    run_dir = tmp_path / "run"
    metadata = run_dir / "stages" / "0-64px" / "backup" / "training_metadata.json"
    first = _train(run_dir, "--epochs=12")
    deadline = time.monotonic() + 240
    while not metadata.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "training ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = json.loads(metadata.read_text())["epoch"]
    assert 1 <= killed_at < 12

    second = _train(run_dir, "--epochs=12")
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-2000:]
    resumed_at = int(re.search(r"resuming stage 0-64px from epoch (\d+)", stderr).group(1))
    assert resumed_at >= killed_at
    with open(run_dir / "stages" / "0-64px" / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    # CSVLogger rows of the killed run may be lost with its unflushed buffer; the rerun's rows
    # must be exactly the epochs after the checkpoint.
    assert epochs == sorted(set(epochs))
    assert [epoch for epoch in epochs if epoch >= resumed_at] == list(range(resumed_at, 12))
    assert re.findall(r"Epoch (\d+)/12", stdout)[0] == str(resumed_at + 1)
    assert "test referable-DR AUC" in stdout


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message(tmp_path):
    """A huge learning rate makes the loss non-finite: exit 1, message, no best model."""
    process = _train(tmp_path / "run", "--learning_rate=1e30", "--heatmap_weight=0")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "training loss became" in stderr and "No checkpoint was kept" in stderr
    assert not (tmp_path / "run" / "best.keras").exists()
