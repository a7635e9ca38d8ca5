"""Under ``CI=true`` nothing may skip but a `slow` test left out without --run-slow: a test
that skips for a missing requirement (Chromium, a module) fails there instead."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SKIPPING = """
import pytest

@pytest.mark.skipif(True, reason="Chromium is not installed")
def test_needs_a_browser():
    pass

@pytest.mark.slow
def test_slow():
    pass

def test_runs():
    pass
"""


def _pytest(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    """pytest with tests/conftest.py as a plugin on a file of `SKIPPING` tests."""
    (tmp_path / "skipping_test.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    command = [
        sys.executable, "-m", "pytest", "-c", os.path.join(REPO, "pyproject.toml"),
        f"--rootdir={tmp_path}", "-p", "tests.conftest", "-q", "-rs",
        str(tmp_path / "skipping_test.py"),
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_skip_fails_under_ci_but_a_slow_test_may_skip(tmp_path):
    result = _pytest(tmp_path, "true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 error" in result.stdout
    assert "skipped under CI=true" in result.stdout and "Chromium is not installed" in result.stdout
    assert "slow: run with --run-slow" in result.stdout


def test_outside_ci_a_skip_is_a_skip(tmp_path):
    result = _pytest(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped" in result.stdout
