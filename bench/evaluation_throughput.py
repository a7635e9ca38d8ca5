"""Benchmark: the evaluation stream against the model's own heatmap throughput.

Run: python bench/evaluation_throughput.py [--n=200] [--size=256] [--batch_size=16]
Writes N synthetic images (seed 11) to a temporary folder, then on the same batches times
(1) `drscreen.evaluation.runner.run` with sensitivity heatmaps, reading and decoding the
images and lesion masks and reducing every heatmap to candidates, FROC matches and heatmap
quality figures, and (2) the compiled `compute` alone on the batches held in memory. Prints
both rates and their ratio; deletion/insertion curves are off (an optional fixed cost).
"""

import argparse
import tempfile
import time

import tensorflow as tf

from drscreen import models
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import runner


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
        batches = [
            (tf.constant(b["image"]), tf.constant(b["mask"]))
            for b in runner.batches(records, config, with_masks=False)
        ]
        for images, fov in batches[:2]:  # trace full and last partial batch shapes
            heatmap_fns["sensitivity"](images, fov)
        heatmap_fns["sensitivity"](*batches[-1])

        start = time.perf_counter()
        for images, fov in batches:
            heatmap_fns["sensitivity"](images, fov)[1].numpy()
        compute_s = time.perf_counter() - start

        start = time.perf_counter()
        result = runner.run(records, score_fn, heatmap_fns, config)
        evaluate_s = time.perf_counter() - start
    candidates = result.methods["sensitivity"].lesions.candidates
    print(
        f"{args.n} images at {args.size} px, batch {args.batch_size}, sensitivity heatmaps: "
        f"evaluation stream {args.n / evaluate_s:.1f} images/s ({evaluate_s:.1f} s, "
        f"{candidates} candidates), compute alone {args.n / compute_s:.1f} images/s "
        f"({compute_s:.1f} s); evaluation/compute time ratio x{evaluate_s / compute_s:.2f}"
    )


if __name__ == "__main__":
    main()
