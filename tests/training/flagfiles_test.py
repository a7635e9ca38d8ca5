"""Every shipped recipe in configs/ parses into a TrainConfig, and (slow) trains a step; the
benchmark's flagfiles parse into a BenchmarkConfig whose recipes are among them.

A flagfile that names a removed flag, or a recipe whose network cannot be built at one of
its stage sizes, fails here instead of on a user's first run.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drscreen.benchmark.config import BenchmarkConfig
from drscreen.cli.config_flags import config_from_flagfile
from drscreen.data.prepare import PrepareConfig, prepare_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.models import build
from drscreen.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_FLAGFILES = [
    ROOT / "configs" / "benchmark.flags",
    ROOT / "configs" / "benchmark_smoke.flags",
]
FLAGFILES = sorted(set((ROOT / "configs").glob("*.flags")) - set(BENCHMARK_FLAGFILES))
TENSORFLOW_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|shuffle=True")


def _config(path: Path, *overrides: str) -> TrainConfig:
    return config_from_flagfile(TrainConfig, str(path), *overrides)


def test_configs_are_there():
    """The recipes the README and docs name exist (so the tests below cannot pass vacuously)."""
    names = {path.name for path in FLAGFILES}
    assert {"quickstart.flags", "smoke.flags", "oO_netA_512.flags", "oO_netB_512.flags"} <= names
    assert all(path.is_file() for path in BENCHMARK_FLAGFILES)


@pytest.mark.parametrize("path", BENCHMARK_FLAGFILES, ids=lambda path: path.name)
def test_benchmark_flagfile_parses_and_names_shipped_recipes(path, tmp_path):
    """States its command, parses into a BenchmarkConfig, and every recipe it trains is a
    shipped training flagfile (tested above)."""
    assert f"python scripts/benchmark.py --flagfile=configs/{path.name}" in path.read_text()
    config = config_from_flagfile(BenchmarkConfig, str(path), f"--out={tmp_path}")
    assert len(config.seeds) >= (3 if path.name == "benchmark.flags" else 1)
    assert {ROOT / recipe for recipe in config.recipes} <= set(FLAGFILES)


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda path: path.name)
def test_flagfile_parses_and_its_stage_networks_build(path, tmp_path):
    """States its command and expectations, parses, and each stage's network builds (width 2:
    the layer structure, hence the sizes that fit, does not depend on the width)."""
    header = path.read_text()
    assert f"python scripts/train.py --flagfile=configs/{path.name}" in header
    assert "Expected" in header
    config = _config(path, f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path}")
    for size in config.model.stage_sizes:
        model = build(config.model.model, input_size=size, width=2)
        assert model.input_shape == (None, size, size, 3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """24 synthetic images at 128 px, and the same prepared as TFRecords."""
    raw = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=24, size=128, seed=0), raw, 1, progress=False)
    prepared = tmp_path_factory.mktemp("prepared")
    prepare_dataset(PrepareConfig("synthetic", str(raw), str(prepared), image_size=128))
    return raw, prepared


@pytest.mark.slow
@pytest.mark.parametrize("path", FLAGFILES, ids=lambda path: path.name)
def test_recipe_trains_a_step_on_tiny_data(path, tiny_data, tmp_path):
    """scripts/train.py with the flagfile, on tiny data for one step per stage, finishes with
    its final metrics, and the terminal shows no TensorFlow log line or Keras warning."""
    raw, prepared = tiny_data
    tfrecords = _config(path, "--model_dir=x", f"--data_dir={prepared}").data.data_source
    data = prepared if tfrecords == "tfrecords" else raw
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.run(
        [
            sys.executable,
            "scripts/train.py",
            f"--flagfile=configs/{path.name}",
            f"--model_dir={tmp_path / 'run'}",
            f"--data_dir={data}",
            "--epochs=1",
            "--steps_per_epoch=1",
            "--batch_size=2",
        ],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "drscreen.training: test" in process.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()
    noise = [line for line in process.stderr.splitlines() if TENSORFLOW_LOG_LINE.search(line)]
    assert not noise, noise[:5]
