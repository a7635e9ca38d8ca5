"""Latency of score + sensitivity heatmap against score only, and against a GradientTape heatmap.

    python bench/heatmap_latency.py [--repeats=7] [--batch_size=8] [--models=oO_netA,small]

For each model (o_O net A at 448 px, the small network at 192 px; random weights, random
images, CPU) and batch size 8, all three computations compiled with `tf.function`, one
warm-up call excluded:
1. score only: ``model(images)``;
2. score + heatmap with drscreen's engine: `drscreen.heatmaps.sensitivity`;
3. score + the same heatmap from ``tf.GradientTape`` (TF's own gradient kernels).
The three are called in turn ``--repeats`` times, so each round sees the same load; the
script prints the medians, the ratios 2/1 (heatmap overhead; floor ~2x, aim <= 2.5x) and
2/3 (aim <= 1x) of the medians, and the range of the per-round ratio 2/3; then the same
ratios of the process CPU time (all threads), which other jobs on a shared machine disturb
much less than the wall-clock time.
Runtime: ~2-3 minutes on 2 CPU cores (net A dominates).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from drscreen.heatmaps.sensitivity import sensitivity  # noqa: E402
from drscreen.models import build  # noqa: E402

INPUT_SIZES = {"oO_netA": 448, "oO_netB": 448, "small": 192}


def interleaved_seconds(functions: dict, images: tf.Tensor, repeats: int) -> tuple[dict, dict]:
    """Wall and CPU seconds of each call of each function, the functions called in turn."""
    for function in functions.values():
        function(images)  # warm-up: tracing and first-run allocations
    wall = {name: [] for name in functions}
    cpu = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for tensor in tf.nest.flatten(function(images)):
                tensor.numpy()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def contenders(model) -> dict:
    """Score only, drscreen's heatmap, the tape's heatmap: name -> `tf.function`."""

    @tf.function
    def score_only(images):
        return model(images, training=False)[:, 0]

    @tf.function
    def engine_heatmap(images):
        return sensitivity(model, images)

    @tf.function
    def tape_heatmap(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            grades = model(images, training=False)[:, 0]
            total = tf.reduce_sum(grades)
        return grades, tf.reduce_sum(tf.abs(tape.gradient(total, images)), axis=-1)

    return {"score": score_only, "engine": engine_heatmap, "tape": tape_heatmap}


def arguments(description: str, repeats: int) -> argparse.Namespace:
    """``--models``, ``--batch_size`` and ``--repeats`` (also `heatmap_peers`' options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--models", default="oO_netA,small")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, CPU threads: {os.cpu_count()}, batch {args.batch_size}")
    return args


def model_and_images(name: str, batch_size: int) -> tuple:
    """A random-weight ``name`` at its benchmark size and a seeded batch of random images."""
    size = INPUT_SIZES[name]
    model = build(name, input_size=size)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch_size, size, size, 3)), tf.float32)
    return model, images


def main() -> None:
    args = arguments(__doc__.splitlines()[0], repeats=7)
    for name in args.models.split(","):
        model, images = model_and_images(name, args.batch_size)
        size = INPUT_SIZES[name]
        functions = contenders(model)
        _, engine_maps = functions["engine"](images)
        _, tape_maps = functions["tape"](images)
        difference = float(tf.reduce_max(tf.abs(engine_maps - tape_maps)))
        scale = float(tf.reduce_max(tape_maps))
        load = os.getloadavg()[0]
        wall, cpu = interleaved_seconds(functions, images, args.repeats)
        for clock, times in (("wall", wall), ("CPU", cpu)):
            score_s, engine_s, tape_s = (statistics.median(times[key]) for key in functions)
            rounds = [e / t for e, t in zip(times["engine"], times["tape"], strict=True)]
            print(
                f"{name} {size}px ({model.count_params():,} params, load {load:.1f}), {clock}: "
                f"score only {score_s * 1e3:.0f} ms, score+heatmap (engine) "
                f"{engine_s * 1e3:.0f} ms, score+heatmap (GradientTape) {tape_s * 1e3:.0f} ms | "
                f"heatmap/score x{engine_s / score_s:.2f}, engine/tape x{engine_s / tape_s:.2f} "
                f"(rounds {min(rounds):.2f}-{max(rounds):.2f}) | max |engine - tape| "
                f"{difference:.2e} (heatmap max {scale:.2e})",
                flush=True,
            )


if __name__ == "__main__":
    main()
