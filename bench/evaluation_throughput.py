"""Benchmark: the evaluation stream against the model's own heatmap throughput.

Run: python bench/evaluation_throughput.py [--n=200] [--size=256] [--batch_size=16]
Writes N synthetic images (seed 11) to a temporary folder, then on the same batches times
(1) `drscreen.evaluation.runner.run` with sensitivity heatmaps, reading and decoding the
images and lesion masks and reducing every heatmap to candidates, FROC matches and heatmap
quality figures, and (2) the compiled `compute` alone on the batches held in memory. Prints
both rates and their ratio; deletion/insertion curves are off (an optional fixed cost). To
say where the difference goes it also times, on their own, reading and decoding the batches
with their lesion masks (no model), and reducing the held heatmaps with a
`LesionAccumulator`, each with its process CPU time (the stream's parts share the cores).
"""

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from drscreen import models
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import runner, streaming


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(SynthConfig.from_preset(n=args.n, size=args.size, seed=11), folder)
        records = read_dataset("synthetic", folder)
        model = models.build("small", input_size=args.size)
        score_fn, heatmap_fns = runner.keras_functions(model, ("sensitivity",))
        config = runner.RunnerConfig(
            args.size, batch_size=args.batch_size, perturbation_images=0, progress=False
        )
        decode_s, decode_cpu = _timed(lambda: list(runner.batches(records, config, True)))
        numpy_batches = list(runner.batches(records, config, with_masks=True))
        batches = [(tf.constant(b["image"]), tf.constant(b["mask"])) for b in numpy_batches]
        for images, fov in batches[:2]:  # trace full and last partial batch shapes
            heatmap_fns["sensitivity"](images, fov)
        heatmap_fns["sensitivity"](*batches[-1])

        heatmaps: list[np.ndarray] = []
        compute_s, compute_cpu = _timed(
            lambda: heatmaps.extend(
                heatmap_fns["sensitivity"](images, fov)[1].numpy() for images, fov in batches
            )
        )

        def reduce() -> None:
            accumulator = streaming.LesionAccumulator()
            for batch, maps in zip(numpy_batches, heatmaps, strict=True):
                accumulator.add_batch(batch["image_id"], maps, batch["lesion_masks"], batch["mask"])

        reduce_s, reduce_cpu = _timed(reduce)
        result: list[runner.RunResult] = []
        evaluate_s, evaluate_cpu = _timed(
            lambda: result.append(runner.run(records, score_fn, heatmap_fns, config))
        )
    candidates = result[0].methods["sensitivity"].lesions.candidates
    print(
        f"{args.n} images at {args.size} px, batch {args.batch_size}, sensitivity heatmaps: "
        f"evaluation stream {args.n / evaluate_s:.1f} images/s ({evaluate_s:.1f} s, "
        f"{candidates} candidates), compute alone {args.n / compute_s:.1f} images/s "
        f"({compute_s:.1f} s); evaluation/compute time ratio x{evaluate_s / compute_s:.2f}"
    )
    parts = (
        ("evaluation stream", evaluate_s, evaluate_cpu),
        ("compute alone", compute_s, compute_cpu),
        ("decode + crop images and masks alone", decode_s, decode_cpu),
        ("lesion reductions alone", reduce_s, reduce_cpu),
    )
    print(
        "per image, wall / process CPU: "
        + "; ".join(
            f"{name} {1000 * wall / args.n:.1f} / {1000 * cpu / args.n:.1f} ms"
            for name, wall, cpu in parts
        )
    )


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


if __name__ == "__main__":
    main()
