"""Patient-level screening: combine both eyes of a patient into one score and one label.

A patient is positive when any of their eyes is; their score is the max or mean of their
eyes' scores. Pure functions over numpy arrays; no knowledge of models or files.
"""

from collections.abc import Sequence

import numpy as np

from drscreen.evaluation import screening

REDUCTIONS = ("max", "mean")


def patient_scores(
    scores: np.ndarray, patient_ids: Sequence[str] | np.ndarray, reduction: str = "max"
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce per-image scores to one score per patient.

    Returns
    -------
    (sorted unique patient ids, (P,) patient scores).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction {reduction!r} is not one of {REDUCTIONS}")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    patient_ids = np.asarray(patient_ids).ravel()
    if patient_ids.shape != scores.shape:
        raise ValueError(f"patient_ids {patient_ids.shape} differ from scores {scores.shape}")
    unique, inverse = np.unique(patient_ids, return_inverse=True)
    if reduction == "mean":
        combined = np.bincount(inverse, weights=scores) / np.bincount(inverse)
    else:
        combined = np.full(unique.size, -np.inf)
        np.maximum.at(combined, inverse, scores)
    return unique, combined


def patient_labels(
    labels: np.ndarray, patient_ids: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A patient is positive when any of their images is: (unique ids, (P,) booleans)."""
    unique, combined = patient_scores(np.asarray(labels, dtype=np.float64), patient_ids, "max")
    return unique, combined > 0


def patient_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    patient_ids: Sequence[str] | np.ndarray,
    reduction: str = "max",
) -> float:
    """ROC AUC over patients, each scored by the `reduction` of their eyes' scores."""
    _, combined_labels = patient_labels(labels, patient_ids)
    _, combined_scores = patient_scores(scores, patient_ids, reduction)
    return screening.roc_auc(combined_labels, combined_scores)


def evaluate_patients(
    grades: np.ndarray, predictions: np.ndarray, patient_ids: Sequence[str] | np.ndarray
) -> dict:
    """Patient-level AUC per binary task and reduction, as a JSON-ready dict."""
    result: dict = {"patients": int(np.unique(np.asarray(patient_ids)).size)}
    for task, min_grade in screening.BINARY_TASKS.items():
        labels = screening.binary_labels(grades, min_grade)
        result[task] = {
            f"auc_{reduction}": patient_auc(labels, predictions, patient_ids, reduction)
            for reduction in REDUCTIONS
        }
    return result
