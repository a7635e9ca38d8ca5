"""Tests for `drscreen synth`, run as a subprocess (absl flags are process-global)."""

import csv
import subprocess
import sys

import pytest


def _synth(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drscreen", "synth", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_writes_a_small_dataset_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    result = _synth(
        f"--out={out}",
        "--n=4",
        "--size=64",
        "--seed=3",
        "--workers=1",
        f"--contact_sheet={tmp_path / 'sheet.png'}",
    )
    assert result.returncode == 0, result.stderr
    with open(out / "trainLabels.csv") as f:
        assert [row["image"] for row in csv.DictReader(f)] == [
            "1_left",
            "1_right",
            "2_left",
            "2_right",
        ]
    assert len(list((out / "train").glob("*.jpeg"))) == 4
    assert (tmp_path / "sheet.png").stat().st_size > 0
    assert "synth: 4/4 images" in result.stderr

    refused = _synth(f"--out={out}", "--n=4", "--size=64")
    assert refused.returncode != 0
    assert "not empty; pass --overwrite" in refused.stderr
    assert (
        _synth(f"--out={out}", "--n=2", "--size=64", "--overwrite", "--workers=1").returncode == 0
    )


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--n=0", "--n must be a positive number"),
        ("--size=32", "--size must be at least 64"),
        ("--difficulty=extreme", "--difficulty 'extreme' is not one of"),
        ("--workers=0", "--workers must be at least 1"),
    ],
)
def test_bad_flags_give_clear_errors(tmp_path, flag, message):
    result = _synth(f"--out={tmp_path / 'out'}", flag)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "out").exists()
