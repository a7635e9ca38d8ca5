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

are called in turn ``--repeats`` times after one warm-up call (`heatmap_latency`'s timing);
the script prints each median, by wall-clock and by process CPU time, its ratio to the score
and to the tape, and each map's largest difference from the tape's (with the same channel
reduction), so the contenders are checked to compute the same thing.
Runtime: ~4 min on 2 shared cores (net A dominates).
"""

import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from heatmap_latency import (  # noqa: E402 (a sibling script)
    INPUT_SIZES,
    arguments,
    contenders,
    interleaved_seconds,
    model_and_images,
)


def peer_contenders(model, batch_size: int) -> tuple[dict, list[str]]:
    """The installed peers (name -> (function, reduction)) and why the others are skipped."""
    peers, skipped = {}, []
    try:
        from xplique.attributions import Saliency as XpliqueSaliency

        explainer = XpliqueSaliency(model, batch_size=batch_size, reducer="sum")
        targets = np.ones((batch_size, 1), np.float32)
        peers["xplique"] = (
            lambda images: tf.convert_to_tensor(explainer.explain(images, targets)),
            "sum",
        )
    except ImportError as error:
        skipped.append(f"xplique ({error})")
    try:
        from tf_keras_vis.saliency import Saliency as KerasVisSaliency

        saliency = KerasVisSaliency(model, clone=False)
        peers["tf-keras-vis"] = (
            lambda images: tf.convert_to_tensor(
                saliency(lambda out: out[:, 0], images, normalize_map=False)
            ),
            "max",
        )
    except ImportError as error:
        skipped.append(f"tf-keras-vis ({error})")
    return peers, skipped


def _as_map(result: tf.Tensor) -> np.ndarray:
    values = result.numpy()
    return values[..., 0] if values.ndim == 4 else values


def main() -> None:
    args = arguments(__doc__.splitlines()[0], repeats=5)
    for name in args.models.split(","):
        model, images = model_and_images(name, args.batch_size)
        size = INPUT_SIZES[name]
        own = contenders(model)
        functions = {"score": (own["score"], None)}
        functions["drscreen"] = (lambda x, f=own["engine"]: f(x)[1], "sum")
        functions["tape"] = (lambda x, f=own["tape"]: f(x)[1], "sum")
        peers, skipped = peer_contenders(model, args.batch_size)
        functions.update(peers)
        tape_gradient = own["tape"](images)[1].numpy()  # sum over channels of |g|
        differences = {}
        for key, (function, reduction) in functions.items():
            if reduction is None:
                continue
            expected = tape_gradient if reduction == "sum" else _max_map(model, images)
            differences[key] = np.abs(_as_map(function(images)) - expected).max() / expected.max()
        load = os.getloadavg()[0]
        wall, cpu = interleaved_seconds(
            {key: function for key, (function, _) in functions.items()}, images, args.repeats
        )
        print(f"\n{name} {size}px ({model.count_params():,} params), load {load:.1f}")
        for clock, times in (("wall", wall), ("CPU", cpu)):
            medians = {key: statistics.median(values) for key, values in times.items()}
            for key, seconds in medians.items():
                check = (
                    f", max |map - tape| / max {differences[key]:.1e}" if key in differences else ""
                )
                print(
                    f"  {clock:<5}{key:<13}{seconds * 1e3:8.0f} ms"
                    f"  x{seconds / medians['score']:.2f} score"
                    f"  x{seconds / medians['tape']:.2f} tape{check}"
                )
        for reason in skipped:
            print(f"  skipped {reason}")


def _max_map(model, images: tf.Tensor) -> np.ndarray:
    """The tape's max over channels of |g| (tf-keras-vis' channel reduction)."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(model(images, training=False)[:, 0])
    return np.abs(tape.gradient(total, images).numpy()).max(axis=-1)


if __name__ == "__main__":
    main()
