"""The benchmark's whole chain on tiny data (configs/benchmark_smoke.flags), and its resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(out: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "scripts/benchmark.py",
        "--flagfile=configs/benchmark_smoke.flags",
        f"--out={out}",
        *flags,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_smoke_benchmark_fills_every_table_and_resumes(tmp_path):
    out = tmp_path / "bench"
    first = _benchmark(out)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    headline = "froc_score/all_lesions"
    for name in (
        "benchmark_plain · sensitivity",
        "benchmark_plain · gradcam",
        "benchmark_evidence · sensitivity",
        "benchmark_unet_evidence · sensitivity",
        "benchmark_heatmap_aware_sparsity · sensitivity",
        "pixel-supervised reference (tuned)",
        "few-shot reference (validation masks only)",
        "lesion student",
        "lesion student of the shuffled-grade control",
        "benchmark_plain on shuffled grades · sensitivity",
    ):
        assert set(rows[name]) == {"0", "1"}, name
        assert all(values[headline] is not None for values in rows[name].values()), name
    for level in ("top half", "all"):
        assert f"benchmark_plain randomised ({level}) · sensitivity" in rows
    assert "benchmark_plain · sensitivity (type-specific)" in rows
    sweep = results["heatmap_aware_sweep"]["recipes"]["benchmark_heatmap_aware_sparsity"]
    assert [t["lambda"] for t in sweep["trials"]] == [10000, 30000]
    assert [t["froc"] for t in results["reference_tuning"]["trials"]]
    assert results["selection"]["mask_free"] and results["goals"]["default"]
    markdown = (out / "results.md").read_text()
    assert "All lesions: does the map show the lesions?" in markdown and "Per seed" in markdown
    assert (out / "gallery_seed0.png").stat().st_size > 10_000
    # a killed run: one stage lost; the rerun redoes only that stage, training nothing
    (out / "seed1" / "few_shot.json").unlink()
    second = _benchmark(out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "training" not in second.stderr
    assert "few_shot of seed1" in second.stderr
    assert set(json.loads((out / "results.json").read_text())["rows"]) == set(rows)


def test_bad_flags_are_named_before_anything_is_written(tmp_path):
    out = tmp_path / "bench"
    process = _benchmark(out, "--control_recipe=nosuch")
    assert process.returncode != 0
    assert "--control_recipe=nosuch is not one of --recipes" in process.stderr
    assert "Traceback" not in process.stderr and not out.exists()
    process = _benchmark(out, "--recipes=configs/missing.flags", "--control_recipe=missing")
    assert "flagfile configs/missing.flags" in process.stderr and not out.exists()
