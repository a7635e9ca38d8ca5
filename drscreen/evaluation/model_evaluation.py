"""`evaluate_model`: one model, its validation images and the evaluated images -> metrics.

The one evaluation path of drscreen: training's final metrics (`drscreen.training.run`) and
``drscreen evaluate`` (`drscreen.commands.evaluate`) both call it, so a figure means the same
thing wherever it appears. Usable from Python directly::

    score_fn, heatmap_fns = runner.keras_functions(model, ("sensitivity", "gradcam"))
    result = evaluate_model(score_fn, test_source, validation_source,
                            RunnerConfig(image_size=512), heatmap_fns)
    result.metrics["methods"]["sensitivity"]["relevance_mass/red_lesions"]

Any map producer can be evaluated: a heatmap function is any callable ``(images (N, S, S, 3),
fov_masks (N, S, S)) -> (grades (N,), heatmaps (N, S, S))``, and the lesion candidates are cut
with ``RunnerConfig.candidates``. Sources are those of `drscreen.data.sources`
(e.g. `split_source` of a run's ``splits.json``).
"""

import dataclasses
import time
from collections.abc import Mapping
from types import MappingProxyType

from drscreen.data.sources import Source
from drscreen.evaluation import sections
from drscreen.evaluation.runner import (
    HeatmapFunction,
    RunnerConfig,
    RunResult,
    ScoreFunction,
    run,
)
from drscreen.models.calibration import Calibration


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """What `evaluate_model` returns.

    Attributes
    ----------
    metrics:
        ``evaluated`` (images, grade MSE, ``skipped``: each photograph the pipeline refused,
        ``{"image": path, "reason": ...}``), ``validation`` (images, grade MSE, referable
        and any-DR AUC, ``skipped``; None without a validation source), ``screening``
        (thresholds chosen on validation), ``patients`` (with paired eyes),
        ``calibration``, ``methods`` (one `sections.method_section` per heatmap method, in
        the order given) and ``seconds``.
    evaluated, validation:
        The streams' accumulators (e.g. to pick gallery cases); validation None without
        validation images.
    """

    metrics: dict
    evaluated: RunResult
    validation: RunResult | None


def evaluate_model(
    score_fn: ScoreFunction,
    evaluated: Source,
    validation: Source | None,
    config: RunnerConfig,
    heatmap_fns: Mapping[str, HeatmapFunction] = MappingProxyType({}),
    calibration: Calibration | None = None,
    calibration_source: str = "",
    n_bootstrap: int = 1000,
    label: str = "evaluate",
) -> ModelEvaluation:
    """Evaluate one model on ``evaluated``, with thresholds and calibration from ``validation``.

    Both sources are streamed through this model: the validation images for its scores only,
    the evaluated ones for scores, every heatmap method and, when the source has lesion
    masks, the lesion figures. Operating points, kappa grade thresholds and the Platt
    calibration come from this model's own validation scores.

    Parameters
    ----------
    score_fn:
        Grades (N,) of a batch (N, S, S, 3) float32 in [0, 255]; gives the predictions when
        ``heatmap_fns`` is empty, and scores the deletion/insertion curves.
    evaluated, validation:
        The images evaluated, and the images thresholds are chosen on (None: image-level
        sections are skipped, saying why).
    config:
        Image size, batching, lesion candidates, perturbation curves, progress.
    heatmap_fns:
        Method name to heatmap function; the first one's grades are the predictions.
    calibration, calibration_source:
        The referable-DR calibration to score (e.g. the run's ``calibration.json``) and where
        it came from; None scores the calibration fitted on ``validation``.
    n_bootstrap:
        Bootstrap replicates of the AUC confidence intervals.
    label:
        Shown on the progress lines.

    Photographs the pipeline refuses (unreadable, grayscale, too small, no field of view,
    an unusable lesion mask) are named on stderr and in ``skipped``; the others are evaluated.
    Without a usable validation photograph, image-level sections are skipped, saying why.

    Raises
    ------
    ValueError
        When every evaluated photograph is refused, naming each with its reason.
    """
    start = time.perf_counter()
    validation_run = None
    if validation is not None:
        scores_only = dataclasses.replace(config, lesion_metrics=False)
        validation_run = run(validation, score_fn, {}, scores_only, f"{label}, validation")
    evaluated_run = run(evaluated, score_fn, heatmap_fns, config, label)
    if not evaluated_run.images:
        raise ValueError(
            f"{label}: none of the {len(evaluated_run.skipped)} photographs could be used: "
            + "; ".join(f"{path}: {reason}" for path, reason in evaluated_run.skipped)
        )
    test = evaluated_run.screening.arrays()
    tuning = None
    validation_summary = None
    if validation_run is not None:
        validation_summary = {"images": 0}
        if validation_run.images:
            tuning = validation_run.screening.arrays()
            validation_summary = sections.validation_summary(tuning)
        validation_summary["skipped"] = _skipped(validation_run)
    metrics = {
        "evaluated": {**sections.evaluated_summary(test), "skipped": _skipped(evaluated_run)},
        "validation": validation_summary,
        **sections.screening_sections(test, tuning, n_bootstrap),
        "calibration": sections.calibration_section(test, tuning, calibration, calibration_source),
        "methods": {
            name: sections.method_section(
                result.lesion_metrics(), result.perturbation_metrics(), result.seconds_per_image
            )
            for name, result in evaluated_run.methods.items()
        },
        "seconds": time.perf_counter() - start,
    }
    return ModelEvaluation(metrics, evaluated_run, validation_run)


def _skipped(result: RunResult) -> list[dict[str, str]]:
    return [{"image": path, "reason": reason} for path, reason in result.skipped]
