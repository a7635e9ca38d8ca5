"""Score, drscreen's heatmap, the tape's and two libraries' saliency maps on one model, one run.

    pip install -e ".[bench]" && pip install --no-deps xplique==2.0.2 tf-keras-vis==0.8.7
    python bench/heatmap_peers.py [--models=oO_netA,small] [--batch_size=8] [--repeats=5]

The peers pin older TensorFlow/SciPy releases than drscreen's, so they are installed without
their dependencies; the ``[bench]`` extra holds the ones they really import (einops,
scikit-image, tensorflow-probability with tf-keras, deprecated, imageio). A peer that does not
import is skipped with the reason. For each model (random weights, random images, CPU,
batch ``--batch_size``) the contenders, each compiled or called as its library intends:

1. score only: ``model(images)`` in a `tf.function`;
2. drscreen: `drscreen.heatmaps.sensitivity` in a `tf.function` (sum over channels of |g|);
3. tape: ``tf.GradientTape`` in a `tf.function`, the same map;
4. Xplique ``Saliency`` (``reducer="sum"``, the same map; its own batching and tf.function);
5. tf-keras-vis ``Saliency`` (|g|, max over channels, not normalised).

are called in turn ``--repeats`` times after one warm-up call; the script prints each median,
its ratio to the score and to the tape, and each peer's largest difference from the tape's map
(with the peer's channel reduction), so the contenders are checked to compute the same thing.
Runtime: ~4 min on 2 shared cores (net A dominates).
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


def _tape_gradient(model, images: tf.Tensor) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(model(images, training=False)[:, 0])
    return tape.gradient(total, images)


def own_contenders(model) -> dict:
    """Score, drscreen and tape: name -> (function of images, channel reduction of its map)."""

    @tf.function
    def score(images):
        return model(images, training=False)[:, 0]

    @tf.function
    def drscreen_map(images):
        return sensitivity(model, images)[1]

    @tf.function
    def tape_map(images):
        return tf.reduce_sum(tf.abs(_tape_gradient(model, images)), axis=-1)

    return {"score": (score, None), "drscreen": (drscreen_map, "sum"), "tape": (tape_map, "sum")}


def peer_contenders(model, batch_size: int) -> tuple[dict, list[str]]:
    """The installed peers (name -> (function, reduction)) and why the others are skipped."""
    peers, skipped = {}, []
    try:
        from xplique.attributions import Saliency as XpliqueSaliency

        explainer = XpliqueSaliency(model, batch_size=batch_size, reducer="sum")
        targets = np.ones((batch_size, 1), np.float32)
        peers["xplique"] = (lambda images: explainer.explain(images, targets), "sum")
    except ImportError as error:
        skipped.append(f"xplique ({error})")
    try:
        from tf_keras_vis.saliency import Saliency as KerasVisSaliency

        saliency = KerasVisSaliency(model, clone=False)
        peers["tf-keras-vis"] = (
            lambda images: saliency(lambda out: out[:, 0], images, normalize_map=False),
            "max",
        )
    except ImportError as error:
        skipped.append(f"tf-keras-vis ({error})")
    return peers, skipped


def _as_map(result) -> np.ndarray:
    values = np.asarray(result.numpy() if hasattr(result, "numpy") else result)
    return values[..., 0] if values.ndim == 4 else values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="oO_netA,small")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, batch {args.batch_size}")
    for name in args.models.split(","):
        size = INPUT_SIZES[name]
        model = build(name, input_size=size)
        rng = np.random.default_rng(0)
        images = tf.constant(rng.uniform(0, 255, (args.batch_size, size, size, 3)), tf.float32)
        contenders = own_contenders(model)
        peers, skipped = peer_contenders(model, args.batch_size)
        contenders.update(peers)
        gradient = np.abs(_tape_gradient(model, images).numpy())
        reference = {"sum": gradient.sum(axis=-1), "max": gradient.max(axis=-1)}
        differences = {}
        for key, (function, reduction) in contenders.items():
            result = function(images)  # warm-up: tracing, first-run allocations
            if reduction is not None:
                expected = reference[reduction]
                differences[key] = np.abs(_as_map(result) - expected).max() / expected.max()
        times = {key: [] for key in contenders}
        load = os.getloadavg()[0]
        for _ in range(args.repeats):
            for key, (function, _) in contenders.items():
                start = time.perf_counter()
                _as_map(function(images))
                times[key].append(time.perf_counter() - start)
        medians = {key: statistics.median(values) for key, values in times.items()}
        print(f"\n{name} {size}px ({model.count_params():,} params), load {load:.1f}")
        for key, seconds in medians.items():
            check = f", max |map - tape| / max {differences[key]:.1e}" if key in differences else ""
            print(
                f"  {key:<13}{seconds * 1e3:8.0f} ms  x{seconds / medians['score']:.2f} score"
                f"  x{seconds / medians['tape']:.2f} tape{check}"
            )
        for reason in skipped:
            print(f"  skipped {reason}")


if __name__ == "__main__":
    main()
