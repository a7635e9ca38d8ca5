"""Report figures as PNG files: ROC, FROC, reliability diagram, referral curves, a gallery.

Figures are drawn on `matplotlib.figure.Figure` objects (Agg canvas, no pyplot global state)
from the JSON-ready dicts the metric functions return, and written to the given path.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from drscreen.evaluation.lesions import FP_RATES

_TASK_TITLES = {"referable_dr": "Referable DR (grade ≥ 2)", "any_dr": "Any DR (grade ≥ 1)"}
_DPI = 120


@dataclasses.dataclass(frozen=True)
class GalleryCase:
    """One gallery panel pair.

    Attributes
    ----------
    image:
        (H, W, 3) RGB image, uint8 or float in [0, 255].
    heatmap:
        (H, W) heatmap of the same size.
    lesion_mask:
        (H, W) ground-truth mask drawn as contours, or None.
    title:
        Caption, e.g. "miss: 10_left (score 0.12)".
    """

    image: np.ndarray
    heatmap: np.ndarray
    lesion_mask: np.ndarray | None
    title: str


def _save(figure: Figure, path: str) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def plot_roc(screening_metrics: Mapping, path: str) -> str:
    """ROC curves of the binary tasks with AUC, its CI and the test operating points."""
    tasks = [t for t in _TASK_TITLES if t in screening_metrics]
    figure = Figure(figsize=(5.5 * len(tasks), 5.2))
    for i, task in enumerate(tasks):
        ax = figure.add_subplot(1, len(tasks), i + 1)
        entry = screening_metrics[task]
        low, high = entry["auc_ci"]
        ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", label="chance")
        ax.plot(
            entry["roc"]["false_positive_rate"],
            entry["roc"]["true_positive_rate"],
            color="C0",
            label=f"ROC (AUC {entry['auc']:.3f})",
        )
        for j, (target, point) in enumerate(entry["operating_points"].items()):
            ax.plot(
                1.0 - point["specificity"],
                point["sensitivity"],
                marker="o",
                linestyle="none",
                color=f"C{j + 1}",
                label=(
                    f"target sens. {target} on val. → test sens. {point['sensitivity']:.3f}, "
                    f"spec. {point['specificity']:.3f}"
                ),
            )
        level = round(100 * entry["ci_level"])
        ax.set_title(
            f"{_TASK_TITLES[task]}\nAUC {entry['auc']:.3f} "
            f"({level}% CI {low:.3f}–{high:.3f}, n={entry['positives']}+/{entry['negatives']}−)",
            fontsize=10,
        )
        ax.set_xlabel("1 − specificity (false positive rate)")
        ax.set_ylabel("sensitivity (true positive rate)")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    return _save(figure, path)


def plot_froc(lesion_metrics: Mapping, path: str) -> str:
    """FROC curves, one line per lesion type or group, on a log2 false-positive axis."""
    targets = [t for t, entry in lesion_metrics.items() if "froc" in entry]
    if not targets:
        raise ValueError("no target with lesions to draw a FROC curve for")
    figure = Figure(figsize=(8.0, 6.0))
    ax = figure.add_subplot(1, 1, 1)
    for i, target in enumerate(targets):
        entry = lesion_metrics[target]
        fp = np.asarray(entry["froc"]["false_positives_per_image"])
        sensitivity = np.asarray(entry["froc"]["sensitivity"])
        # Steps to the right edge of the axis: the curve's last sensitivity holds beyond it.
        fp = np.append(np.maximum(fp, FP_RATES[0] / 2), max(fp[-1], FP_RATES[-1] * 2))
        sensitivity = np.append(sensitivity, sensitivity[-1])
        group = target.endswith("_lesions")
        ax.step(
            fp,
            sensitivity,
            where="post",
            color=f"C{i}",
            linewidth=2.4 if group else 1.3,
            linestyle="-" if group else "--",
            zorder=2 if group else 3,  # dashed types stay visible over a coinciding group
            label=(
                f"{target.replace('_', ' ')}: FROC score {entry['froc_score']:.3f}, "
                f"{entry['lesions']} lesions"
            ),
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(FP_RATES, [f"{r:g}" for r in FP_RATES])
    ax.set_xlim(FP_RATES[0] / 2, FP_RATES[-1] * 2)
    ax.set_ylim(-0.01, 1.03)
    images = max(lesion_metrics[t]["images"] for t in targets)
    ax.set_title(
        f"Lesion detection (FROC), {images} images\n"
        "FROC score = mean sensitivity at 1/8–8 FP/image",
        fontsize=10,
    )
    ax.set_xlabel("mean false positives per image")
    ax.set_ylabel("lesion sensitivity")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    return _save(figure, path)


def plot_reliability(calibration_metrics: Mapping, path: str) -> str:
    """Reliability diagram of the referable-DR probability with per-bin counts."""
    edges = np.asarray(calibration_metrics["bin_edges"])
    counts = np.asarray(calibration_metrics["counts"])
    observed = np.asarray(calibration_metrics["observed_frequency"], dtype=np.float64)
    confidence = np.asarray(calibration_metrics["mean_probability"], dtype=np.float64)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    filled = counts > 0
    figure = Figure(figsize=(5.5, 6.2))
    ax, histogram = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="perfect calibration")
    ax.bar(
        centres[filled],
        observed[filled],
        width=width[filled] * 0.9,
        color="C0",
        alpha=0.7,
        label="observed fraction referable",
    )
    ax.plot(
        confidence[filled], observed[filled], "o-", color="C3", label="(mean predicted, observed)"
    )
    ax.set_ylabel("observed fraction referable")
    ax.set_ylim(0, 1.01)
    ax.set_title(
        "Calibration of the referable-DR probability\n"
        f"expected calibration error {calibration_metrics['expected_calibration_error']:.3f} "
        f"({edges.size - 1} bins, {counts.sum()} images)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    histogram.bar(centres, counts, width=width * 0.9, color="0.5")
    histogram.set_xlabel("predicted referable-DR probability")
    histogram.set_ylabel("images")
    histogram.set_xlim(0, 1)
    return _save(figure, path)


def plot_referral_curves(referral: Mapping, path: str) -> str:
    """AUC and accuracy on the images kept against the share referred, one line per uncertainty.

    ``referral`` is `drscreen.evaluation.triage.referral_section`'s dict (``curves``: name ->
    `drscreen.evaluation.referral.referral_curve`); fractions whose kept images hold one class
    (no AUC) are gaps in the AUC line.
    """
    curves = referral.get("curves") or {}
    if not curves:
        raise ValueError("no referral curve to draw")
    figure = Figure(figsize=(11.0, 4.8))
    auc_ax, accuracy_ax = figure.subplots(1, 2)
    for i, (name, curve) in enumerate(curves.items()):
        referred = 100.0 * np.asarray(curve["referred_fraction"], np.float64)
        label = name.replace("_", " ")
        for ax, key in ((auc_ax, "auc"), (accuracy_ax, "accuracy")):
            values = np.array([np.nan if v is None else v for v in curve[key]], np.float64)
            ax.plot(referred, values, marker="o", color=f"C{i}", label=label)
    for ax, name in ((auc_ax, "referable-DR AUC"), (accuracy_ax, "accuracy")):
        ax.set_xlabel("most uncertain images referred to a grader (%)")
        ax.set_ylabel(f"{name} on the images kept")
        ax.grid(alpha=0.3)
        ax.legend(title="uncertainty", fontsize=8)
    auc_ax.set_title(f"AUC without referral {referral['auc_plain']:.3f}", fontsize=10)
    accuracy_ax.set_title(f"decisions at the {referral['operating_point']} threshold", fontsize=10)
    figure.suptitle(
        f"Referral by uncertainty, {referral['images']} gradable images "
        f"(views: {', '.join(referral['views'])})",
        fontsize=11,
    )
    return _save(figure, path)


def plot_gallery(cases: Sequence[GalleryCase], path: str, columns: int = 4) -> str:
    """For each case: the image with lesion contours, then the heatmap over a grey copy.

    Heatmap values below 5% of the case's maximum are left transparent so the anatomy
    under weak relevance stays visible; one colour bar serves every case.
    """
    if not cases:
        raise ValueError("no case to draw in the gallery")
    columns = min(columns, len(cases))
    rows = math.ceil(len(cases) / columns)
    figure = Figure(figsize=(3.0 * columns + 0.8, 6.2 * rows + 0.4), layout="constrained")
    axes = figure.subplots(2 * rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    overlay = None
    for i, case in enumerate(cases):
        image = np.clip(np.asarray(case.image, dtype=np.float64) / 255.0, 0.0, 1.0)
        heatmap = np.abs(np.asarray(case.heatmap, dtype=np.float64))
        if heatmap.shape != image.shape[:2]:
            raise ValueError(
                f"{case.title}: heatmap {heatmap.shape} and image {image.shape} differ"
            )
        row, column = divmod(i, columns)
        top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
        top.imshow(image)
        bottom.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1)
        relevance = heatmap / (heatmap.max() or 1.0)
        overlay = bottom.imshow(
            np.ma.masked_less(relevance, 0.05), cmap="jet", alpha=0.65, vmin=0, vmax=1
        )
        for ax in (top, bottom):
            if case.lesion_mask is not None and np.any(case.lesion_mask):
                ax.contour(
                    np.asarray(case.lesion_mask) > 0, levels=[0.5], colors="magenta", linewidths=1.2
                )
        top.set_title(case.title, fontsize=8)
        bottom.set_title("heatmap |H| / max over grey image", fontsize=8)
    figure.colorbar(overlay, ax=axes[1::2, :].ravel().tolist(), shrink=0.8, label="|H| / max")
    figure.legend(
        handles=[Line2D([], [], color="magenta", label="ground-truth lesion contour")],
        loc="outside lower center",
        fontsize=8,
    )
    figure.savefig(path, dpi=_DPI)
    return path
