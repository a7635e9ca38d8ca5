"""Latency of score + sensitivity heatmap against score only, and against a GradientTape heatmap.

    python bench/heatmap_latency.py [--repeats=7] [--batch_size=8] [--models=oO_netA,small]

For each model (o_O net A at 448 px, the small network at 192 px; random weights, random
images, CPU) and batch size 8, all three computations compiled with `tf.function`, one
warm-up call excluded, median of ``--repeats`` calls:
1. score only: ``model(images)``;
2. score + heatmap with drscreen's engine: `drscreen.heatmaps.sensitivity`;
3. score + the same heatmap from ``tf.GradientTape`` (TF's own gradient kernels);
and prints ratios 2/1 (heatmap overhead; floor ~2x, aim <= 2.5x) and 2/3 (aim <= 1x).
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


def _median_seconds(function, images: tf.Tensor, repeats: int) -> float:
    function(images)  # warm-up: tracing and first-run allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for tensor in tf.nest.flatten(function(images)):
            tensor.numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _functions(model):
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

    return score_only, engine_heatmap, tape_heatmap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--models", default="oO_netA,small")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, CPU threads: {os.cpu_count()}, batch {args.batch_size}")
    for name in args.models.split(","):
        size = INPUT_SIZES[name]
        model = build(name, input_size=size)
        rng = np.random.default_rng(0)
        images = tf.constant(rng.uniform(0, 255, (args.batch_size, size, size, 3)), tf.float32)
        score_only, engine_heatmap, tape_heatmap = _functions(model)
        engine_grades, engine_maps = engine_heatmap(images)
        tape_grades, tape_maps = tape_heatmap(images)
        difference = float(tf.reduce_max(tf.abs(engine_maps - tape_maps)))
        scale = float(tf.reduce_max(tape_maps))
        score_s = _median_seconds(score_only, images, args.repeats)
        engine_s = _median_seconds(engine_heatmap, images, args.repeats)
        tape_s = _median_seconds(tape_heatmap, images, args.repeats)
        print(
            f"{name} {size}px ({model.count_params():,} params): "
            f"score only {score_s * 1e3:.0f} ms, "
            f"score+heatmap (engine) {engine_s * 1e3:.0f} ms, "
            f"score+heatmap (GradientTape) "
            f"{tape_s * 1e3:.0f} ms | heatmap/score x{engine_s / score_s:.2f}, "
            f"engine/tape x{engine_s / tape_s:.2f} | max |engine - tape| "
            f"{difference:.2e} (heatmap max {scale:.2e})"
        )


if __name__ == "__main__":
    main()
