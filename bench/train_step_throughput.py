"""Images/s of a heatmap-aware training step against a plain step, same model and batch.

    python bench/train_step_throughput.py [--model=small --image_size=128 --batch_size=16]

Both steps are `HeatmapAwareModel.train_step` compiled by Keras (`train_on_batch`); the plain
one has λ = 0 (no heatmap), the heatmap-aware one λ > 0 (forward, backward to the pixels,
then the gradient through both passes). Warm-up excluded, median over repeats. Aim: ≤ 3×.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen.models import build  # noqa: E402
from drscreen.training.heatmap_aware import HeatmapAwareModel  # noqa: E402

flags.DEFINE_string("model", "small", "drscreen.models.build name.")
flags.DEFINE_integer("image_size", 128, "Input size.")
flags.DEFINE_integer("width", 16, "Base filters.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("steps", 10, "Timed steps per repeat.")
flags.DEFINE_integer("repeats", 3, "Repeats (median reported).")
FLAGS = flags.FLAGS


def images_per_second(heatmap_weight: float, images: np.ndarray, grades: np.ndarray) -> float:
    """Median images/s of `train_on_batch` for one λ."""
    keras.utils.set_random_seed(0)
    model = build(FLAGS.model, input_size=FLAGS.image_size, width=FLAGS.width)
    wrapper = HeatmapAwareModel(model, heatmap_weight=heatmap_weight, l2=5e-4)
    wrapper.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True))
    for _ in range(2):
        wrapper.train_on_batch(images, grades)
    rates = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            wrapper.train_on_batch(images, grades)
        rates.append(FLAGS.steps * len(images) / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str]) -> None:
    del argv
    rng = np.random.default_rng(0)
    size = FLAGS.image_size
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.45 * size) ** 2)[..., None]
    images = (rng.uniform(0, 255, (FLAGS.batch_size, size, size, 3)) * disc).astype(np.float32)
    grades = rng.integers(0, 5, FLAGS.batch_size).astype(np.float32)
    plain = images_per_second(0.0, images, grades)
    aware = images_per_second(1.0, images, grades)
    print(
        f"{FLAGS.model} {size}px batch {FLAGS.batch_size}: plain step {plain:.1f} images/s, "
        f"heatmap-aware step {aware:.1f} images/s, slowdown {plain / aware:.2f}x"
    )


if __name__ == "__main__":
    app.run(main)
