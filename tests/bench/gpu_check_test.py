"""bench/gpu_check.py runs end to end with --smoke on any machine (no GPU is lent to CI)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_check_smoke_runs_on_cpu():
    """Both precisions report a train-step ratio and a latency ratio; the device is named."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "gpu_check.py"), "--smoke"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device: no GPU visible")
    for policy in ("float32", "mixed_float16"):
        assert any(line.startswith(f"{policy}: train step plain") for line in lines)
        assert any(line.startswith(f"{policy}: batch 2 score") for line in lines)
