"""The sections of one model's metrics, assembled from what its evaluation streams left.

Inputs are `drscreen.evaluation.streaming.ScreeningAccumulator.arrays()` of the evaluated and
the validation images (``grades``, ``predictions``, ``image_ids``, ``patient_ids``) and the
per-method `drscreen.evaluation.runner.MethodResult`; the metrics themselves come from
`screening`, `patients`, `calibration` and `streaming`. Every threshold (operating points,
kappa grade thresholds) and the Platt calibration are taken from the validation arrays of the
same model. A section that cannot be computed holds ``{"skipped": reason}``.

Lesion figures are flattened into keys that name their target (`method_summary`):
``relevance_mass/red_lesions``, ``relevance_mass/all_lesions``, ``froc_score/bright_lesions``...
"""

from collections.abc import Mapping

import numpy as np

from drscreen.data.lesions import REFERABLE_GRADE
from drscreen.evaluation import calibration, patients, screening
from drscreen.models.calibration import Calibration, fit_referable_calibration

Arrays = Mapping[str, np.ndarray]

SUMMARY_TARGETS = ("red_lesions", "bright_lesions", "all_lesions")
"""Lesion groups whose figures `method_summary` lifts to target-named keys."""
SUMMARY_DIAGNOSTICS = ("red_lesions_ignoring_bright", "bright_lesions_ignoring_red")
"""`streaming.DIAGNOSTIC_TARGETS` whose FROC score `method_summary` lifts (a diagnostic of
the per-type protocol, not a result)."""
SUMMARY_FIGURES = {
    "froc_score": ("froc_score",),
    "sensitivity_at_1fp": ("sensitivity_at_fp", "1"),
    "sensitivity_at_8fp": ("sensitivity_at_fp", "8"),
    "image_auc": ("image_auc",),
    "relevance_mass": ("relevance_mass",),
    "pointing_game": ("pointing_game",),
}
"""Summary name to its path in a `LesionAccumulator.metrics()` target entry."""
FITTED_SOURCE = "fitted on the validation images"


def graded(arrays: Arrays) -> dict[str, np.ndarray]:
    """The arrays of the images that have a grade (grade -1 means none)."""
    keep = arrays["grades"] >= 0
    return {key: value[keep] for key, value in arrays.items()}


def _binary_problem(grades: np.ndarray, name: str) -> str | None:
    """Why the binary tasks cannot be analysed on ``grades``, None when they can."""
    for task, min_grade in screening.BINARY_TASKS.items():
        labels = screening.binary_labels(grades, min_grade)
        if labels.all() or not labels.any():
            side = "positive" if labels.any() else "negative"
            return f"the {name} images are all {side} for {task}"
    return None


def _has_pairs(patient_ids: np.ndarray) -> bool:
    return np.unique(patient_ids).size < patient_ids.size


def _mse(arrays: Arrays) -> float | None:
    if not arrays["grades"].size:
        return None
    return float(np.mean((arrays["predictions"] - arrays["grades"]) ** 2))


def evaluated_summary(evaluated: Arrays) -> dict:
    """Images streamed and the grade regression's mean squared error on the graded ones."""
    return {"images": int(evaluated["grades"].size), "grade_mse": _mse(graded(evaluated))}


def validation_summary(validation: Arrays) -> dict:
    """Images, grade MSE and the referable / any-DR AUC of the model on its validation images
    (an AUC is None when the validation images hold one class only)."""
    labelled = graded(validation)
    summary = {"images": int(validation["grades"].size), "grade_mse": _mse(labelled)}
    for task, min_grade in screening.BINARY_TASKS.items():
        labels = screening.binary_labels(labelled["grades"], min_grade)
        defined = labels.any() and not labels.all()
        auc = screening.roc_auc(labels, labelled["predictions"]) if defined else None
        summary[f"{task}_auc"] = auc
    return summary


def screening_sections(evaluated: Arrays, validation: Arrays | None, n_bootstrap: int) -> dict:
    """``screening`` (image level) and, with paired eyes, ``patients``.

    Thresholds are chosen on ``validation`` and applied to ``evaluated``; ungraded images
    are left out of both.
    """
    test = graded(evaluated)
    if not test["grades"].size:
        return {"screening": {"skipped": "the dataset has no grades"}}
    problem = _binary_problem(test["grades"], "evaluated")
    if problem is None and validation is None:
        problem = "no validation data to choose thresholds on"
    if problem is None:
        tuning = graded(validation)
        problem = (
            _binary_problem(tuning["grades"], "validation")
            if tuning["grades"].size
            else "the validation images have no grades"
        )
    if problem is not None:
        return {"screening": {"skipped": problem}}
    pairs = _has_pairs(test["patient_ids"])
    result = {
        "screening": screening.evaluate_screening(
            test["grades"],
            test["predictions"],
            tuning["grades"],
            tuning["predictions"],
            test["patient_ids"] if pairs else None,
            screening.ScreeningConfig(n_bootstrap=n_bootstrap),
        )
    }
    if pairs:
        _, worst_grades = patients.patient_scores(test["grades"], test["patient_ids"], "max")
        problem = _binary_problem(worst_grades, "patients'")
        result["patients"] = (
            {"skipped": problem}
            if problem
            else patients.evaluate_patients(
                test["grades"], test["predictions"], test["patient_ids"]
            )
        )
    return result


def _referable(arrays: Arrays) -> np.ndarray:
    return screening.binary_labels(arrays["grades"], REFERABLE_GRADE)


def calibration_section(
    evaluated: Arrays,
    validation: Arrays | None,
    scored: Calibration | None = None,
    source: str = "",
) -> dict:
    """The referable-DR calibration: its Platt fit on validation, and the one scored.

    Parameters
    ----------
    evaluated, validation:
        The model's arrays on the evaluated and on its validation images.
    scored:
        The calibration whose reliability is measured on the evaluated images (e.g. the run's
        ``calibration.json``); None scores the fit (the default `Calibration()` when there is
        no fit).
    source:
        Where ``scored`` came from, recorded as ``source``.

    Returns
    -------
    ``fitted`` (`Calibration.to_dict()` of the fit on validation, or None and ``reason``),
    ``expected_calibration_error_by_split`` (``{"validation"|"evaluated": {"default": ...,
    "fitted": ...}}``), and the scored calibration's ``midpoint``, ``scale``, ``source`` and
    `drscreen.evaluation.calibration.evaluate_calibration` on the evaluated images
    (``expected_calibration_error``, bins). ``{"skipped": reason}`` without grades.
    """
    test = graded(evaluated)
    if not test["grades"].size:
        return {"skipped": "the dataset has no grades"}
    tuning = graded(validation) if validation is not None else None
    fitted, reason = None, "no validation images"
    if tuning is not None:
        try:
            fitted = fit_referable_calibration(tuning["predictions"], _referable(tuning))
        except ValueError as error:
            reason = str(error)
    candidates = {"default": Calibration(), "fitted": fitted}
    errors = {
        name: {
            key: calibration.expected_calibration_error(
                _referable(arrays), candidate.probability(arrays["predictions"])
            )
            for key, candidate in candidates.items()
            if candidate is not None
        }
        for name, arrays in (("validation", tuning), ("evaluated", test))
        if arrays is not None and arrays["grades"].size
    }
    if scored is None:
        scored, source = (fitted, FITTED_SOURCE) if fitted else (Calibration(), "default")
    section = {
        "fitted": fitted.to_dict() if fitted else None,
        "expected_calibration_error_by_split": errors,
        **scored.to_dict(),
        "source": source,
        **calibration.evaluate_calibration(
            _referable(test), scored.probability(test["predictions"])
        ),
    }
    if fitted is None:
        section["reason"] = reason
    return section


def method_summary(lesion_metrics: Mapping, perturbation_metrics: Mapping) -> dict:
    """A method's headline figures under keys that name their target.

    ``<figure>/<target>`` for each figure of `SUMMARY_FIGURES` and target of
    `SUMMARY_TARGETS` (None where the target has no value, e.g. without masks), the FROC
    score of each of `SUMMARY_DIAGNOSTICS`, and ``deletion_auc`` and ``insertion_auc`` (None
    without curves).
    """
    summary: dict = {}
    for target in SUMMARY_TARGETS:
        for figure, path in SUMMARY_FIGURES.items():
            value = lesion_metrics.get(target, {})
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            summary[f"{figure}/{target}"] = value
    for target in SUMMARY_DIAGNOSTICS:
        summary[f"froc_score/{target}"] = lesion_metrics.get(target, {}).get("froc_score")
    for key in ("deletion_auc", "insertion_auc"):
        summary[key] = perturbation_metrics.get(key)
    return summary


def method_section(
    lesion_metrics: Mapping, perturbation_metrics: Mapping, seconds_per_image: float | None
) -> dict:
    """One heatmap method's section: time, `method_summary`, then the full lesion and
    deletion/insertion results."""
    return {
        "seconds_per_image": seconds_per_image,
        **method_summary(lesion_metrics, perturbation_metrics),
        "lesions": dict(lesion_metrics),
        "perturbation": dict(perturbation_metrics),
    }
