"""Benchmark: heatmap by the drscreen backward engine vs by tf.GradientTape.

Both compute score + d(score)/d(pixels) of the same o_O "net A"-shaped chain (112 px input,
o_O's first training stage, filters n = 8 to stay CPU-friendly) inside `tf.function`; the
script prints the median time per batch of each and their ratio (engine / tape).

    python bench/backprop_engine.py --size=112 --batch=8 --repeats=20
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen import layers  # noqa: E402
from drscreen.heatmaps.backprop import input_gradient  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 112, "Input height and width in pixels.")
flags.DEFINE_integer("batch", 8, "Images per batch.")
flags.DEFINE_integer("filters", 8, "Base filter count n (o_O uses 32).")
flags.DEFINE_integer("repeats", 20, "Timed calls of each function after one warm-up.")


def _net_a(size: int, n: int) -> keras.Sequential:
    def conv(filters: int, kernel: int = 3, strides: int = 1) -> list[keras.layers.Layer]:
        return [layers.Conv2D(filters, kernel, strides, untied_bias=True), layers.LeakyReLU()]

    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.InputNormalization(),
            *conv(n, 5, 2),
            *conv(n),
            layers.MaxPooling2D(3, 2),
            *conv(2 * n, 5, 2),
            *conv(2 * n),
            *conv(2 * n),
            layers.MaxPooling2D(3, 2),
            *conv(4 * n),
            *conv(4 * n),
            *conv(4 * n),
            layers.RMSPooling2D(3, 2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(64),
            layers.LeakyReLU(),
            layers.Maxout(2),
            layers.Dense(1),
        ]
    )


def _median_seconds(functions: dict, images: tf.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved (fair on a shared machine)."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function(images)
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            [tensor.numpy() for tensor in function(images)]
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str]) -> None:
    del argv
    keras.utils.set_random_seed(0)
    model = _net_a(FLAGS.size, FLAGS.filters)
    spec = [tf.TensorSpec((None, FLAGS.size, FLAGS.size, 3))]

    @tf.function(input_signature=spec)
    def engine(images):
        return input_gradient(model, images)

    @tf.function(input_signature=spec)
    def tape(images):
        with tf.GradientTape() as gradient_tape:
            gradient_tape.watch(images)
            outputs = model(images)
            score = tf.reduce_sum(outputs[:, 0])
        return outputs, gradient_tape.gradient(score, images)

    images = tf.random.uniform((FLAGS.batch, FLAGS.size, FLAGS.size, 3), 0, 255, seed=1)
    difference = tf.reduce_max(tf.abs(engine(images)[1] - tape(images)[1]))
    seconds = _median_seconds({"engine": engine, "tape": tape}, images, FLAGS.repeats)
    engine_s, tape_s = seconds["engine"], seconds["tape"]
    print(
        f"size={FLAGS.size} batch={FLAGS.batch} n={FLAGS.filters}: engine {engine_s * 1e3:.1f} ms, "
        f"tape {tape_s * 1e3:.1f} ms, ratio engine/tape {engine_s / tape_s:.2f}, "
        f"max |heatmap difference| {float(difference):.2e}"
    )


if __name__ == "__main__":
    app.run(main)
