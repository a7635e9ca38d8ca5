"""Images/s of a heatmap-aware training step against a plain step, same model and batch.

    python bench/train_step_throughput.py [--model=small --image_size=128 --batch_size=16]

Both steps are `HeatmapAwareModel.train_step` compiled by Keras (`train_on_batch`); the plain
one has λ = 0 (no heatmap), the heatmap-aware one λ > 0 (forward, backward to the pixels,
then the gradient through both passes). Warm-up excluded; the two are timed in alternating
rounds of ``--steps`` steps so that both see the same load; prints the medians, their ratio
and the range of the per-round ratios, by wall-clock and by process CPU time (which other
jobs on a shared machine disturb much less). Aim: ≤ 2.5×.
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
flags.DEFINE_integer("steps", 10, "Timed steps per round.")
flags.DEFINE_integer("repeats", 3, "Rounds (median reported).")
FLAGS = flags.FLAGS


def compiled_wrapper(heatmap_weight: float, images: np.ndarray, grades: np.ndarray):
    """A `HeatmapAwareModel` for one λ, compiled and warmed up."""
    keras.utils.set_random_seed(0)
    model = build(FLAGS.model, input_size=FLAGS.image_size, width=FLAGS.width)
    wrapper = HeatmapAwareModel(model, heatmap_weight=heatmap_weight, l2=5e-4)
    wrapper.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True))
    for _ in range(2):
        wrapper.train_on_batch(images, grades)
    return wrapper


def images_per_second(wrapper, images: np.ndarray, grades: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) images/s of one round of ``--steps`` `train_on_batch` calls."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(FLAGS.steps):
        wrapper.train_on_batch(images, grades)
    count = FLAGS.steps * len(images)
    return count / (time.perf_counter() - start), count / (time.process_time() - start_cpu)


def main(argv: list[str]) -> None:
    del argv
    rng = np.random.default_rng(0)
    size = FLAGS.image_size
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.45 * size) ** 2)[..., None]
    images = (rng.uniform(0, 255, (FLAGS.batch_size, size, size, 3)) * disc).astype(np.float32)
    grades = rng.integers(0, 5, FLAGS.batch_size).astype(np.float32)
    wrappers = {"plain": compiled_wrapper(0.0, images, grades)}
    wrappers["aware"] = compiled_wrapper(1.0, images, grades)
    rates = {(name, clock): [] for name in wrappers for clock in ("wall", "CPU")}
    for _ in range(FLAGS.repeats):
        for name, wrapper in wrappers.items():
            wall, cpu = images_per_second(wrapper, images, grades)
            rates[name, "wall"].append(wall)
            rates[name, "CPU"].append(cpu)
    for clock in ("wall", "CPU"):
        plain, aware = (statistics.median(rates[name, clock]) for name in ("plain", "aware"))
        rounds = [p / a for p, a in zip(rates["plain", clock], rates["aware", clock], strict=True)]
        print(
            f"{FLAGS.model} {size}px batch {FLAGS.batch_size} (load {os.getloadavg()[0]:.1f}), "
            f"{clock}: plain step {plain:.1f} images/s, heatmap-aware step {aware:.1f} "
            f"images/s, slowdown {plain / aware:.2f}x (rounds {min(rounds):.2f}-{max(rounds):.2f})"
        )


if __name__ == "__main__":
    app.run(main)
