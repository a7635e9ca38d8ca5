"""What the benchmark learns on the validation split, before any test image is seen.

Per heatmap method, one pass over the validation images gives:

- the candidate smoothing σ, chosen by the same search for every map (the σ of
  `BenchmarkConfig.sigmas` with the best validation FROC score on the map's own target: all
  lesions for a map meant to show every lesion, one group for a type-specific map). It uses
  the validation *lesion masks*: a protocol of the benchmark, not something a screening
  archive (grades only) allows, and said so in the results;
- that best validation FROC score, which the oracle model choice uses (mask-based, reported
  apart, never as the result);
- the heatmap's flip stability, mask-free: the mean over images of the Pearson correlation,
  inside the field of view, between H(x) and the heatmap of the mirrored image mirrored back.
  Heatmaps that follow the image content move with it;
- the map's grade separation, mask-free (grades only): the ROC AUC of the map's image score
  (its FOV maximum at the chosen σ) for photographs with any DR (grade ≥ 1) against grade 0.
  A map that points at lesions is quiet on photographs without any; the mask-free choice of
  the default map and of the lesion student's teacher uses it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from drscreen.data.sources import Source
from drscreen.evaluation import lesions, screening
from drscreen.evaluation.runner import HeatmapFunction, RunnerConfig, heatmaps_of
from drscreen.evaluation.streaming import LesionAccumulator

GROUP_TARGETS = ("red_lesions", "bright_lesions", "all_lesions")
"""The lesion groups whose validation FROC is recorded for every σ."""
ALL_LESIONS = ("all_lesions",)
"""The default target of the σ search: every lesion, whatever its type."""


@dataclasses.dataclass(frozen=True)
class MethodValidation:
    """One heatmap method on the validation split.

    Attributes
    ----------
    sigma:
        The chosen candidate smoothing (px).
    froc_by_sigma:
        σ -> {group: validation FROC score} for every σ searched.
    froc:
        Validation FROC score of the map's target at the chosen σ (the oracle's criterion).
    target:
        The group(s) whose mean FROC chose σ.
    flip_stability:
        Mean Pearson correlation of H(x) and mirror(H(mirror(x))) inside the FOV (mask-free).
    grade_separation:
        ROC AUC of the image score at the chosen σ, any DR against grade 0 (mask-free); None
        without images on both sides.
    """

    sigma: float
    froc_by_sigma: dict[float, dict[str, float]]
    froc: float
    flip_stability: float
    grade_separation: float | None = None
    target: tuple[str, ...] = ALL_LESIONS

    def to_dict(self) -> dict:
        return {
            "sigma": self.sigma,
            "froc_by_sigma": {f"{s:g}": v for s, v in self.froc_by_sigma.items()},
            "froc": self.froc,
            "flip_stability": self.flip_stability,
            "grade_separation": self.grade_separation,
            "target": list(self.target),
        }


def _correlations(first: np.ndarray, second: np.ndarray, fov: np.ndarray) -> list[float]:
    """Per image, the Pearson correlation of two heatmaps inside the FOV (0 when one is flat)."""
    values = []
    for a, b, inside in zip(first, second, fov > 0, strict=True):
        a, b = a[inside].astype(np.float64), b[inside].astype(np.float64)
        a, b = a - a.mean(), b - b.mean()
        norm = np.sqrt((a * a).sum() * (b * b).sum())
        values.append(float((a * b).sum() / norm) if norm > 0 else 0.0)
    return values


def study_method(
    validation: Source,
    heatmap_fn: HeatmapFunction,
    config: RunnerConfig,
    sigmas: tuple[float, ...],
    target: tuple[str, ...] = ALL_LESIONS,
) -> MethodValidation:
    """σ search (best mean validation FROC over ``target``'s groups), validation FROC and
    flip stability of one map producer (one pass)."""
    accumulators = {
        sigma: LesionAccumulator(
            candidate_config=dataclasses.replace(config.candidates, sigma=float(sigma)),
            pointing_tolerance_px=config.pointing_tolerance_px,
        )
        for sigma in sigmas
    }
    stability: list[float] = []
    grades: dict[str, int] = {}
    for batch, _, heatmaps in heatmaps_of(validation, heatmap_fn, config):
        grades.update(zip(batch["image_id"], batch["grade"].tolist(), strict=True))
        for accumulator in accumulators.values():
            accumulator.add_batch(batch["image_id"], heatmaps, batch["lesion_masks"], batch["mask"])
        mirrored = tf.constant(batch["image"][:, :, ::-1]), tf.constant(batch["mask"][:, :, ::-1])
        back = heatmap_fn(*mirrored)[1].numpy()[:, :, ::-1]
        stability += _correlations(heatmaps, back, batch["mask"])
    froc_by_sigma = {}
    for sigma, accumulator in accumulators.items():
        metrics = accumulator.metrics()
        froc_by_sigma[float(sigma)] = {
            target: float(metrics.get(target, {}).get("froc_score") or 0.0)
            for target in GROUP_TARGETS
        }
    best, froc = chosen_sigma(froc_by_sigma, target)
    return MethodValidation(
        sigma=best,
        froc_by_sigma=froc_by_sigma,
        froc=froc,
        flip_stability=float(np.mean(stability)),
        grade_separation=grade_separation(accumulators[best].image_scores(), grades),
        target=tuple(target),
    )


def grade_separation(image_scores: dict[str, float], grades: dict[str, int]) -> float | None:
    """ROC AUC of the image scores, grade ≥ 1 against grade 0 (ungraded images left out);
    None without images on both sides."""
    graded = [image_id for image_id in image_scores if grades.get(image_id, -1) >= 0]
    labels = np.array([grades[image_id] >= 1 for image_id in graded])
    if labels.all() or not labels.any():
        return None
    return screening.roc_auc(labels, np.array([image_scores[i] for i in graded]))


def chosen_sigma(
    froc_by_sigma: dict[float, dict[str, float]], target: tuple[str, ...]
) -> tuple[float, float]:
    """The σ with the best mean FROC over ``target``'s groups (the smallest σ on a tie), and
    that mean."""

    def criterion(sigma: float) -> float:
        return float(np.mean([froc_by_sigma[sigma][group] for group in target]))

    best = max(sorted(froc_by_sigma), key=criterion)
    return best, criterion(best)


def candidate_configs(
    studies: dict[str, MethodValidation], base: lesions.CandidateConfig
) -> dict[str, lesions.CandidateConfig]:
    """Each method's candidate rule at its chosen σ (`RunnerConfig.method_candidates`)."""
    return {method: dataclasses.replace(base, sigma=s.sigma) for method, s in studies.items()}
