"""What test-time augmentation and the gradability gate cost per image, against one view.

    python bench/tta_latency.py [--repeats=3] [--batch_size=4] [--models=small,oO_netA]

For each model (random weights, random images, CPU; sizes of `heatmap_latency`), compiled
with `tf.function`, one warm-up call excluded, called in turn ``--repeats`` times
(`heatmap_latency`'s timing): score + sensitivity heatmap of the plain image
(`drscreen.heatmaps.compute`), the same over the 4 `FLIPS` and the 8 `DIHEDRAL` views
(`drscreen.heatmaps.tta.tta_compute`), and the 14 gradability figures plus the gate
(`drscreen.data.gradability`, `drscreen.models.quality`). Prints per-image medians and the
ratios to one view, of the wall clock and of the process CPU time.
Runtime: ~5 minutes on 2 shared CPU cores (net A dominates).
"""

import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tensorflow as tf  # noqa: E402
from heatmap_latency import (  # noqa: E402 (a sibling script)
    INPUT_SIZES,
    arguments,
    interleaved_seconds,
    model_and_images,
)

from drscreen.data.fundus import field_of_view_mask  # noqa: E402
from drscreen.data.gradability import gradability_features  # noqa: E402
from drscreen.heatmaps import compute  # noqa: E402
from drscreen.heatmaps.tta import DIHEDRAL, FLIPS, tta_compute  # noqa: E402
from drscreen.models.quality import default_quality_gate  # noqa: E402


def contenders(model) -> dict:
    gate = default_quality_gate()
    return {
        "1 view": tf.function(lambda images: compute(model, images)),
        "4 flips": tf.function(lambda images: tta_compute(model, images, views=FLIPS)),
        "8 dihedral": tf.function(lambda images: tta_compute(model, images, views=DIHEDRAL)),
        "quality": tf.function(
            lambda images: gate.quality(gradability_features(images, field_of_view_mask(images)))
        ),
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], repeats=3)
    for name in args.models.split(","):
        model, images = model_and_images(name, args.batch_size)
        load = os.getloadavg()[0]
        wall, cpu = interleaved_seconds(contenders(model), images, args.repeats)
        for clock, times in (("wall", wall), ("CPU", cpu)):
            per_image = {k: statistics.median(v) / args.batch_size for k, v in times.items()}
            base = per_image["1 view"]
            cells = ", ".join(
                f"{k} {v * 1e3:.0f} ms/image (x{v / base:.2f})" for k, v in per_image.items()
            )
            print(f"{name} {INPUT_SIZES[name]}px (load {load:.1f}), {clock}: {cells}", flush=True)


if __name__ == "__main__":
    main()
