"""Synthetic fundus generation speed: images/s at 512 px with 1 worker and with all cores.

Command: ``python bench/synth_speed.py --n=64 --size=512``. Writes full datasets (JPEG,
masks, tables) into a temporary folder and prints both rates and their ratio.
Expected: >= 10 images/s with one worker on an idle modern core; the ratio approaches the
number of cores when they are free.
"""

import os
import tempfile
import time

from absl import app, flags

from drscreen.data.synthetic import SynthConfig, write_dataset

_N = flags.DEFINE_integer("n", 64, "Images per run.")
_SIZE = flags.DEFINE_integer("size", 512, "Image side in pixels.")
_WORKERS = flags.DEFINE_integer("workers", None, "Parallel workers; default os.cpu_count().")


def _images_per_second(config: SynthConfig, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_dataset(config, out, workers=workers, progress=False)
        return config.n / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    del argv
    config = SynthConfig(n=_N.value, size=_SIZE.value, seed=0)
    workers = _WORKERS.value or os.cpu_count() or 1
    single = _images_per_second(config, 1)
    parallel = _images_per_second(config, workers)
    print(f"synth {config.size} px, n={config.n}, difficulty={config.difficulty}")
    print(f"  1 worker : {single:6.1f} images/s")
    print(f"  {workers} workers: {parallel:6.1f} images/s (process start-up included)")
    print(f"  ratio    : {parallel / single:.2f}x")


if __name__ == "__main__":
    app.run(main)
