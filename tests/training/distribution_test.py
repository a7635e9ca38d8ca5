"""Multi-worker training: two local CPU workers on loopback with MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from drscreen.training import distribution

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_default_strategy_is_chief_and_unsharded(tmp_path):
    """Without a cluster the process writes the run directory and reads all the data."""
    strategy = distribution.make_strategy("default")
    assert distribution.is_chief(strategy)
    assert distribution.worker_shard(strategy) == (1, 0)
    assert distribution.writable_dir(tmp_path, strategy) == tmp_path


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    """multi_worker names the missing TF_CONFIG."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribution.make_strategy("multi_worker")


@pytest.mark.slow
def test_two_workers_train_the_smoke_config(tmp_path):
    """Both workers finish; the chief writes the run dir, worker 1 its scratch folder."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    run_dir = tmp_path / "run"
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "scripts/train.py",
                    "--flagfile=configs/smoke.flags",
                    f"--model_dir={run_dir}",
                    "--distribution=multi_worker",
                    "--epochs=2",
                    "--heatmap_images=0",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=400) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["run"]["chief"] is True
    worker_metrics = run_dir / "workers" / "worker-1" / "metrics.json"
    assert json.loads(worker_metrics.read_text())["run"]["chief"] is False
    history = (run_dir / "stages" / "0-64px" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2
