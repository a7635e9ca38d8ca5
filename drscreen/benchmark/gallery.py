"""A comparison figure of the benchmark: the same test photographs under every map producer.

Per photograph (the first test images holding both red and bright lesions) the photograph and
then one panel per (model · method), wrapped into rows a screen can show: each map is |H|
over its own maximum, drawn over a grey copy of the photograph, with the red-lesion (cyan)
and bright-lesion (yellow) contours of the ground truth, so a reader sees where each method
looks.
"""

import itertools
import math
from collections.abc import Iterator, Mapping

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


def _with_both_groups(test: Source, config: RunnerConfig) -> Iterator[tuple[dict, int, dict]]:
    """(batch, index, group masks) of each test image holding red and bright lesions."""
    for batch in batches(test, config, with_masks=True):
        for index, masks in enumerate(batch["lesion_masks"]):
            shape = batch["mask"][index].shape
            groups = {g: _group_mask(masks, types, shape) for g, types in GROUPS.items()}
            if all(mask.any() for mask in groups.values()):
                yield batch, index, groups


def gallery_batch(test: Source, config: RunnerConfig, count: int) -> dict | None:
    """The first ``count`` test images with both red and bright lesions, as one numpy batch
    (``image``, ``mask``, ``image_id`` of `drscreen.evaluation.runner.batches`, plus
    ``groups``: per image, per group, a mask); None when no image has both."""
    chosen = list(itertools.islice(_with_both_groups(test, config), count))
    if not chosen:
        return None
    stacked = {
        key: np.stack([batch[key][index] for batch, index, _ in chosen])
        for key in ("image", "mask", "image_id")
    }
    return {**stacked, "groups": [groups for _, _, groups in chosen]}


def plot_comparison(
    batch: dict, heatmap_fns: Mapping[str, HeatmapFunction], path: str, columns: int = 8
) -> str:
    """Write the comparison figure of ``batch`` under each heatmap function to ``path``: per
    photograph, the photograph and then each map, wrapped after ``columns`` panels."""
    images, fov = batch["image"], batch["mask"]
    maps = {name: np.abs(fn(images, fov)[1].numpy()) for name, fn in heatmap_fns.items()}
    panels = 1 + len(maps)
    columns = min(columns, panels)
    rows_per_image = math.ceil(panels / columns)
    rows = rows_per_image * len(images)
    figure = Figure(figsize=(2.2 * columns, 2.45 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for index in range(len(images)):
        grey = images[index].mean(axis=-1) / 255.0
        named = [(f"photograph {batch['image_id'][index]}", None), *maps.items()]
        for panel, (title, heatmap) in enumerate(named):
            row, column = divmod(panel, columns)
            ax = axes[index * rows_per_image + row, column]
            if heatmap is None:
                ax.imshow(np.clip(images[index] / 255.0, 0, 1))
            else:
                ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
                relevance = heatmap[index] / (heatmap[index].max() or 1.0)
                ax.imshow(np.ma.masked_less(relevance, 0.05), cmap="jet", alpha=0.6, vmin=0, vmax=1)
            for group, colour in CONTOURS.items():
                mask = batch["groups"][index][group]
                ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(title.replace(" · ", "\n"), fontsize=7)
    figure.legend(
        handles=[Line2D([], [], color=c, label=g.replace("_", " ")) for g, c in CONTOURS.items()],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
    )
    figure.savefig(path, dpi=110)
    return path
