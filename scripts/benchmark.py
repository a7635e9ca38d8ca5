"""Run the lesion benchmark: flags of `BenchmarkConfig` -> `drscreen.benchmark.run_benchmark`.

    python scripts/benchmark.py --flagfile=configs/benchmark.flags --out=DIR [--flag=...]

Trains every recipe and fine-tuning recipe (training flagfiles, parsed like
``scripts/train.py`` parses them) for every seed, the shuffled-grade control, the references
and the lesion students, measures every map and writes ``DIR/results.json`` and
``DIR/results.md``. Re-running with the
same ``--out`` continues where a killed run stopped. Exit status 1 with a clear message for
bad flags, recipes or data.
"""

import shlex
import sys

from drscreen.cli.terminal import quiet_tensorflow

quiet_tensorflow()

from absl import app  # noqa: E402

from drscreen.benchmark.config import BenchmarkConfig, recipe_name  # noqa: E402
from drscreen.benchmark.run import run_benchmark  # noqa: E402
from drscreen.cli.config_flags import (  # noqa: E402
    config_from_flagfile,
    config_from_flags,
    define_config_flags,
)
from drscreen.training.callbacks import NonFiniteLossError  # noqa: E402
from drscreen.training.config import TrainConfig  # noqa: E402

define_config_flags(BenchmarkConfig)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_from_flags(BenchmarkConfig)
        recipes, finetunes = (
            {
                recipe_name(path): config_from_flagfile(TrainConfig, path, "--model_dir=benchmark")
                for path in paths
            }
            for paths in (config.recipes, config.finetune_recipes)
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    try:
        run_benchmark(config, recipes, shlex.join(["python", *sys.argv]), finetunes)
    except (ValueError, NonFiniteLossError) as error:
        sys.exit(f"benchmark.py: error: {error}")
    print(f"drscreen.benchmark: results in {config.out}/results.md and results.json", flush=True)


if __name__ == "__main__":
    app.run(main)
