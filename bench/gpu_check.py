"""GPU figures: mixed_float16 vs float32 training throughput, and score / heatmap latency.

    python bench/gpu_check.py                # on a GPU machine: o_O net A, 448 px (< 10 min)
    python bench/gpu_check.py --smoke        # anywhere, CPU included: a tiny net, seconds

Prints the GPU's name (or says there is none), then for each precision (``float32``,
``mixed_float16``):

1. images/s of the training step at ``--train_batch`` (o_O: 32), plain (λ = 0) and
   heatmap-aware (λ > 0: forward, backward to the pixels, gradient through both), the same
   `drscreen.training.heatmap_aware.HeatmapAwareModel` step training uses, with its loss-scaled
   optimizer and heatmap seed scale under ``mixed_float16``; the two steps are timed in
   alternating rounds, median of ``--rounds``;
2. the latency of the score (forward) and of score + sensitivity heatmap at
   ``--latency_batch`` (32), each in a `tf.function`, median of ``--rounds`` calls.

Random weights and images: speed does not depend on them. ``--smoke`` shrinks everything
(the small network at 64 px, width 4, batches of 2, one round) so that the script is known
to run where no GPU is lent; its figures mean nothing.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen.heatmaps.sensitivity import sensitivity  # noqa: E402
from drscreen.models import build  # noqa: E402
from drscreen.training.heatmap_aware import HeatmapAwareModel  # noqa: E402
from drscreen.training.mixed_precision import (  # noqa: E402
    heatmap_seed_scale,
    set_precision,
    wrap_optimizer,
)

_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that run in seconds on a CPU.")
_MODEL = flags.DEFINE_string("model", "oO_netA", "drscreen.models.build name.")
_SIZE = flags.DEFINE_integer("image_size", 448, "Input side in pixels.")
_TRAIN_BATCH = flags.DEFINE_integer("train_batch", 32, "Training batch size.")
_LATENCY_BATCH = flags.DEFINE_integer("latency_batch", 32, "Batch of the latency figures.")
_STEPS = flags.DEFINE_integer("steps", 10, "Training steps per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds (median reported).")
PRECISIONS = ("float32", "mixed_float16")


def _settings() -> dict:
    if _SMOKE.value:
        return {"model": "small", "size": 64, "options": {"width": 4}, "train_batch": 2,
                "latency_batch": 2, "steps": 1, "rounds": 1}  # fmt: skip
    return {"model": _MODEL.value, "size": _SIZE.value, "options": {},
            "train_batch": _TRAIN_BATCH.value, "latency_batch": _LATENCY_BATCH.value,
            "steps": _STEPS.value, "rounds": _ROUNDS.value}  # fmt: skip


def device_name() -> str:
    """The first GPU's name, or a sentence saying that there is none."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "no GPU visible: running on the CPU (figures are not GPU figures)"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{details.get('device_name', gpus[0].name)} ({len(gpus)} visible)"


def _images(count: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def train_rates(policy: str, settings: dict) -> dict[str, float]:
    """Median images/s of the plain and heatmap-aware steps under ``policy``."""
    images = _images(settings["train_batch"], settings["size"])
    grades = np.random.default_rng(1).integers(0, 5, len(images)).astype(np.float32)
    wrappers = {}
    for name, weight in (("plain", 0.0), ("heatmap-aware", 1.0)):
        keras.utils.set_random_seed(0)
        model = build(settings["model"], input_size=settings["size"], **settings["options"])
        wrapper = HeatmapAwareModel(
            model, heatmap_weight=weight, l2=5e-4, seed_scale=heatmap_seed_scale(policy)
        )
        optimizer = keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True)
        wrapper.compile(optimizer=wrap_optimizer(optimizer, policy))
        for _ in range(2):
            wrapper.train_on_batch(images, grades)
        wrappers[name] = wrapper
    rates = {name: [] for name in wrappers}
    for _ in range(settings["rounds"]):
        for name, wrapper in wrappers.items():
            start = time.perf_counter()
            for _ in range(settings["steps"]):
                wrapper.train_on_batch(images, grades)
            rates[name].append(settings["steps"] * len(images) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def latencies(settings: dict) -> dict[str, float]:
    """Median ms of the score and of score + heatmap at the latency batch (current policy)."""
    keras.utils.set_random_seed(0)
    model = build(settings["model"], input_size=settings["size"], **settings["options"])
    images = tf.constant(_images(settings["latency_batch"], settings["size"]))
    functions = {
        "score": tf.function(lambda x: model(x, training=False)),
        "score + heatmap": tf.function(lambda x: sensitivity(model, x)),
    }
    times = {name: [] for name in functions}
    for function in functions.values():
        tf.nest.map_structure(lambda t: t.numpy(), function(images))
    for _ in range(max(3, settings["rounds"])):
        for name, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), function(images))
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str]) -> None:
    del argv
    settings = _settings()
    print(f"device: {device_name()}; TensorFlow {tf.__version__}", flush=True)
    print(f"{settings['model']} at {settings['size']} px; train batch {settings['train_batch']}, "
          f"latency batch {settings['latency_batch']}", flush=True)  # fmt: skip
    previous = keras.config.dtype_policy()
    try:
        for precision in PRECISIONS:
            policy = set_precision(precision)
            rates = train_rates(policy, settings)
            plain, aware = rates["plain"], rates["heatmap-aware"]
            print(f"{policy}: train step plain {plain:.1f} images/s, heatmap-aware "
                  f"{aware:.1f} images/s (x{plain / aware:.2f})", flush=True)  # fmt: skip
            times = latencies(settings)
            print(f"{policy}: batch {settings['latency_batch']} score {times['score']:.1f} ms, "
                  f"score + heatmap {times['score + heatmap']:.1f} ms "
                  f"(x{times['score + heatmap'] / times['score']:.2f})", flush=True)  # fmt: skip
    finally:
        keras.config.set_dtype_policy(previous)


if __name__ == "__main__":
    app.run(main)
