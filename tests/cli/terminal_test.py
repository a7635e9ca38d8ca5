"""The `drscreen` command shows drscreen's messages, not TensorFlow's start-up (scripts/train.py:
`tests/training/train_script_test.py`)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TENSORFLOW_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog")


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_error_is_the_only_line(tmp_path):
    """`drscreen evaluate` on a missing model loads TensorFlow and prints only its own error."""
    missing = tmp_path / "missing.keras"
    process = _run("-m", "drscreen", "evaluate", f"--model={missing}", "--data=d", "--out=o")
    assert process.returncode != 0
    assert f"drscreen evaluate: model {str(missing)!r}" in process.stderr
    assert not [line for line in process.stderr.splitlines() if TENSORFLOW_LOG_LINE.search(line)]


def test_an_explicit_log_level_is_respected():
    """A user who sets TF_CPP_MIN_LOG_LEVEL keeps it, and TensorFlow is imported as usual."""
    code = (
        "import os, sys; from drscreen.cli.terminal import quiet_tensorflow; quiet_tensorflow(); "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], 'tensorflow' in sys.modules)"
    )

    def run(**variables: str) -> list[str]:
        env = {**os.environ, **variables}
        process = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        return process.stdout.split()

    assert run(TF_CPP_MIN_LOG_LEVEL="1") == ["1", "False"]
    # A worker process inherits the level drscreen set, with its mark: it stays quiet.
    assert run(TF_CPP_MIN_LOG_LEVEL="3", DRSCREEN_QUIET_TENSORFLOW="1") == ["3", "True"]
