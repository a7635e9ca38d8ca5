"""A comparison figure of the benchmark: the same test photographs under every map producer.

One row per photograph (the first test images holding both red and bright lesions), one
column per (model · method) plus the photograph itself: each map is |H| over its own maximum,
drawn over a grey copy of the photograph, with the red-lesion (cyan) and bright-lesion
(yellow) contours of the ground truth, so a reader sees where each method looks.
"""

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from drscreen.benchmark.reference import GROUPS
from drscreen.data.sources import Source
from drscreen.evaluation.runner import HeatmapFunction, RunnerConfig, batches

CONTOURS = {"red_lesions": "cyan", "bright_lesions": "yellow"}


def _group_mask(masks: Mapping[str, np.ndarray], types: tuple[str, ...], shape) -> np.ndarray:
    present = [masks[t] for t in types if t in masks]
    return np.max(present, axis=0) > 0 if present else np.zeros(shape, bool)


def gallery_batch(test: Source, config: RunnerConfig, count: int) -> dict | None:
    """The first ``count`` test images with both red and bright lesions, as one numpy batch
    (`drscreen.evaluation.runner.batches` keys, plus ``groups``: per image, per group, a mask);
    None when no image has both."""
    chosen: dict[str, list] = {}
    for batch in batches(test, config, with_masks=True):
        for i, masks in enumerate(batch["lesion_masks"]):
            shape = batch["mask"][i].shape
            groups = {g: _group_mask(masks, types, shape) for g, types in GROUPS.items()}
            if all(mask.any() for mask in groups.values()):
                for key in ("image", "mask", "image_id"):
                    chosen.setdefault(key, []).append(batch[key][i])
                chosen.setdefault("groups", []).append(groups)
            if len(chosen.get("image", ())) == count:
                return {k: np.stack(v) if k != "groups" else v for k, v in chosen.items()}
    return {k: np.stack(v) if k != "groups" else v for k, v in chosen.items()} or None


def plot_comparison(batch: dict, heatmap_fns: Mapping[str, HeatmapFunction], path: str) -> str:
    """Write the comparison figure of ``batch`` under each heatmap function to ``path``."""
    images, fov = batch["image"], batch["mask"]
    maps = {name: np.abs(fn(images, fov)[1].numpy()) for name, fn in heatmap_fns.items()}
    rows, columns = len(images), 1 + len(maps)
    figure = Figure(figsize=(2.1 * columns, 2.3 * rows + 0.5), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for row in range(rows):
        grey = images[row].mean(axis=-1) / 255.0
        panels = [("photograph " + str(batch["image_id"][row]), None), *maps.items()]
        for column, (title, heatmap) in enumerate(panels):
            ax = axes[row, column]
            ax.set_axis_off()
            if heatmap is None:
                ax.imshow(np.clip(images[row] / 255.0, 0, 1))
            else:
                ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
                relevance = heatmap[row] / (heatmap[row].max() or 1.0)
                ax.imshow(np.ma.masked_less(relevance, 0.05), cmap="jet", alpha=0.6, vmin=0, vmax=1)
            for group, colour in CONTOURS.items():
                mask = batch["groups"][row][group]
                ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
            if row == 0 or heatmap is None:
                ax.set_title(title.replace(" · ", "\n"), fontsize=7)
    figure.legend(
        handles=[Line2D([], [], color=c, label=g.replace("_", " ")) for g, c in CONTOURS.items()],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
    )
    figure.savefig(path, dpi=110)
    return path
