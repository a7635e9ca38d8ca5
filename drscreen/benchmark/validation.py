"""What the benchmark learns on the validation split, before any test image is seen.

Per heatmap method, one pass over the validation images gives:

- the candidate smoothing σ, chosen by the same search for every method (the σ of
  `BenchmarkConfig.sigmas` with the best mean of the red- and bright-lesion FROC scores). It
  uses the validation *lesion masks*: a protocol of the benchmark, not something a screening
  archive (grades only) allows, and said so in the results;
- that best validation FROC score, which the oracle model choice uses (mask-based, reported
  apart, never as the result);
- the heatmap's flip stability, mask-free: the mean over images of the Pearson correlation,
  inside the field of view, between H(x) and the heatmap of the mirrored image mirrored back.
  Heatmaps that follow the image content move with it; the mask-free model choice uses it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from drscreen.data.sources import Source
from drscreen.evaluation import lesions
from drscreen.evaluation.runner import HeatmapFunction, RunnerConfig, heatmaps_of
from drscreen.evaluation.streaming import LesionAccumulator

GROUP_TARGETS = ("red_lesions", "bright_lesions")
"""The lesion groups whose mean FROC score the σ search maximises."""


@dataclasses.dataclass(frozen=True)
class MethodValidation:
    """One heatmap method on the validation split.

    Attributes
    ----------
    sigma:
        The chosen candidate smoothing (px).
    froc_by_sigma:
        σ -> {target: validation FROC score} for every σ searched.
    froc:
        Mean red/bright validation FROC score at the chosen σ (the oracle's criterion).
    flip_stability:
        Mean Pearson correlation of H(x) and mirror(H(mirror(x))) inside the FOV (mask-free).
    """

    sigma: float
    froc_by_sigma: dict[float, dict[str, float]]
    froc: float
    flip_stability: float

    def to_dict(self) -> dict:
        return {
            "sigma": self.sigma,
            "froc_by_sigma": {f"{s:g}": v for s, v in self.froc_by_sigma.items()},
            "froc": self.froc,
            "flip_stability": self.flip_stability,
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
    validation: Source, heatmap_fn: HeatmapFunction, config: RunnerConfig, sigmas: tuple[float, ...]
) -> MethodValidation:
    """σ search, validation FROC and flip stability of one heatmap method (one pass)."""
    accumulators = {
        sigma: LesionAccumulator(
            candidate_config=dataclasses.replace(config.candidates, sigma=float(sigma)),
            pointing_tolerance_px=config.pointing_tolerance_px,
        )
        for sigma in sigmas
    }
    stability: list[float] = []
    for batch, _, heatmaps in heatmaps_of(validation, heatmap_fn, config):
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
    best = max(froc_by_sigma, key=lambda sigma: np.mean(list(froc_by_sigma[sigma].values())))
    return MethodValidation(
        sigma=best,
        froc_by_sigma=froc_by_sigma,
        froc=float(np.mean(list(froc_by_sigma[best].values()))),
        flip_stability=float(np.mean(stability)),
    )


def candidate_configs(
    studies: dict[str, MethodValidation], base: lesions.CandidateConfig
) -> dict[str, lesions.CandidateConfig]:
    """Each method's candidate rule at its chosen σ (`RunnerConfig.method_candidates`)."""
    return {method: dataclasses.replace(base, sigma=s.sigma) for method, s in studies.items()}
