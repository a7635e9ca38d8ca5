"""Image-level screening metrics: ROC/AUC with bootstrap CI, operating points, weighted kappa.

Pure functions over numpy arrays of ground-truth grades and predicted grade regressions ŷ.
The binary tasks (referable DR: grade >= 2, any DR: grade >= 1) are scored by ŷ itself; any
monotone transform of it (e.g. the referable-DR probability) gives the same ROC curve.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from drscreen.data.lesions import NUM_GRADES, REFERABLE_GRADE

ANY_DR_GRADE = 1
BINARY_TASKS = {"referable_dr": REFERABLE_GRADE, "any_dr": ANY_DR_GRADE}
DEFAULT_GRADE_THRESHOLDS = (0.5, 1.5, 2.5, 3.5)
# Bootstrap replicates are counted in chunks of at most this many (replicate, item) cells.
_BOOTSTRAP_CHUNK_CELLS = 1 << 21


@dataclasses.dataclass(frozen=True)
class ScreeningConfig:
    """How image-level screening metrics are computed.

    Attributes
    ----------
    target_sensitivities:
        Sensitivities for which an operating threshold is chosen on validation data.
    n_bootstrap:
        Bootstrap replicates for the AUC confidence interval.
    ci_level:
        Coverage of the confidence interval.
    seed:
        Seed of the bootstrap resampling.
    """

    target_sensitivities: tuple[float, ...] = (0.90, 0.95)
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if not all(0.0 < s <= 1.0 for s in self.target_sensitivities):
            raise ValueError(f"target_sensitivities {self.target_sensitivities} must be in (0, 1]")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be positive, got {self.n_bootstrap}")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")


@dataclasses.dataclass(frozen=True)
class RocCurve:
    """ROC curve; point i is obtained by calling positive every score >= thresholds[i].

    The first point (threshold +inf) is (0, 0); the last is (1, 1).
    """

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    thresholds: np.ndarray


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """Confusion-matrix statistics of the rule `score >= threshold` means positive."""

    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


def binary_labels(grades: np.ndarray, min_grade: int) -> np.ndarray:
    """Return `grades >= min_grade` as a boolean array."""
    return np.asarray(grades) >= min_grade


def _check_binary(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    if labels.all() or not labels.any():
        raise ValueError("labels must contain both positives and negatives for a ROC analysis")
    return labels, scores


def _tied_groups(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct scores (descending) with the number of positives and negatives at each."""
    distinct, inverse = np.unique(-scores, return_inverse=True)
    positives = np.bincount(inverse, weights=labels, minlength=distinct.size)
    totals = np.bincount(inverse, minlength=distinct.size)
    return -distinct, positives, totals - positives


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> RocCurve:
    """ROC curve with one point per distinct score, so tied scores move together.

    Parameters
    ----------
    labels:
        (N,) booleans, True for positives.
    scores:
        (N,) scores, higher meaning more likely positive.
    """
    labels, scores = _check_binary(labels, scores)
    thresholds, positives, negatives = _tied_groups(labels, scores)
    tpr = np.concatenate([[0.0], np.cumsum(positives)]) / positives.sum()
    fpr = np.concatenate([[0.0], np.cumsum(negatives)]) / negatives.sum()
    return RocCurve(fpr, tpr, np.concatenate([[np.inf], thresholds]))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, P(score+ > score-) + P(score+ = score-) / 2, exact with ties."""
    labels, scores = _check_binary(labels, scores)
    _, positives, negatives = _tied_groups(labels, scores)
    # Groups are in descending score order: negatives strictly below group g are those after it.
    negatives_below = negatives.sum() - np.cumsum(negatives)
    wins = np.sum(positives * (negatives_below + 0.5 * negatives))
    return float(wins / (positives.sum() * negatives.sum()))


def _auc_from_counts(counts: np.ndarray) -> np.ndarray:
    """AUC of each replicate from (R, G, 2) counts of negatives/positives per score group.

    Groups are in ascending score order; replicates without both classes are NaN.
    """
    negatives, positives = counts[..., 0], counts[..., 1]
    negatives_below = np.cumsum(negatives, axis=1) - negatives
    wins = np.sum(positives * (negatives_below + 0.5 * negatives), axis=1)
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def bootstrap_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    patient_ids: Sequence[str] | np.ndarray | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """AUCs of bootstrap replicates, resampling images, or patients when `patient_ids` is given.

    Vectorised: one `bincount` per chunk of replicates counts, for each replicate, the
    positives and negatives drawn at each distinct score, and the AUC follows from these
    counts exactly as in `roc_auc`. Replicates without both classes are NaN.

    Returns
    -------
    (n_bootstrap,) AUC of each replicate.
    """
    labels, scores = _check_binary(labels, scores)
    _, groups = np.unique(scores, return_inverse=True)
    n_keys = 2 * (int(groups.max()) + 1)
    image_key = 2 * groups + labels  # (score group, class) of each image
    if patient_ids is None:
        units = None
        n_units = labels.size
    else:
        patient_ids = np.asarray(patient_ids)
        if patient_ids.shape != labels.shape:
            raise ValueError(f"patient_ids {patient_ids.shape} differ from labels {labels.shape}")
        _, units = np.unique(patient_ids, return_inverse=True)
        n_units = int(units.max()) + 1
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // max(n_keys, labels.size))
    aucs = []
    for start in range(0, n_bootstrap, chunk):
        replicates = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n_units, size=(replicates, n_units))
        rows = np.arange(replicates)[:, None]
        if units is None:
            keys, weights = rows * n_keys + image_key[draws], None
        else:
            multiplicity = np.bincount(
                (rows * n_units + draws).ravel(), minlength=replicates * n_units
            ).reshape(replicates, n_units)
            keys, weights = rows * n_keys + image_key[None, :], multiplicity[:, units].ravel()
        counts = np.bincount(keys.ravel(), weights, minlength=replicates * n_keys)
        aucs.append(_auc_from_counts(counts.reshape(replicates, n_keys // 2, 2)))
    return np.concatenate(aucs)


def auc_confidence_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    patient_ids: Sequence[str] | np.ndarray | None = None,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the ROC AUC."""
    aucs = bootstrap_auc(labels, scores, patient_ids, n_bootstrap, seed)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(aucs, [tail, 100.0 - tail])
    return float(low), float(high)


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The highest threshold whose rule `score >= threshold` reaches `target` sensitivity."""
    curve = roc_curve(labels, scores)
    reached = np.flatnonzero(curve.true_positive_rate >= target - 1e-12)
    return float(curve.thresholds[reached[0]])


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Sensitivity, specificity, PPV and NPV of the rule `score >= threshold`."""
    labels = np.asarray(labels).astype(bool).ravel()
    predicted = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    tn = int(np.sum(~predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
    )


def quadratic_weighted_kappa(
    true_grades: np.ndarray, predicted_grades: np.ndarray, num_grades: int = NUM_GRADES
) -> float:
    """Cohen's kappa with quadratic weights (i - j)² / (K - 1)² over grades 0..K-1."""
    true_grades = np.asarray(true_grades).astype(np.int64).ravel()
    predicted_grades = np.asarray(predicted_grades).astype(np.int64).ravel()
    if true_grades.shape != predicted_grades.shape:
        raise ValueError(
            f"true grades {true_grades.shape} and predicted grades "
            f"{predicted_grades.shape} differ in length"
        )
    for name, grades in (("true", true_grades), ("predicted", predicted_grades)):
        if grades.size and (grades.min() < 0 or grades.max() >= num_grades):
            raise ValueError(f"{name} grades must lie in 0..{num_grades - 1}")
    observed = np.bincount(
        true_grades * num_grades + predicted_grades, minlength=num_grades**2
    ).reshape(num_grades, num_grades)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    index = np.arange(num_grades)
    weights = (index[:, None] - index[None, :]) ** 2 / (num_grades - 1) ** 2
    expected_disagreement = np.sum(weights * expected)
    if expected_disagreement == 0:
        return 1.0
    return float(1.0 - np.sum(weights * observed) / expected_disagreement)


def apply_grade_thresholds(predictions: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Grades from regressions: grade k when thresholds[k-1] <= ŷ < thresholds[k]."""
    return np.searchsorted(np.asarray(thresholds), np.asarray(predictions), side="right")


def tune_grade_thresholds(
    true_grades: np.ndarray,
    predictions: np.ndarray,
    initial: Sequence[float] = DEFAULT_GRADE_THRESHOLDS,
    max_rounds: int = 10,
    candidates_per_threshold: int = 41,
) -> tuple[float, ...]:
    """Grade thresholds maximising quadratic weighted kappa, by coordinate search.

    Each round moves one threshold at a time to the best of `candidates_per_threshold`
    values spread evenly between its neighbours, keeping the thresholds increasing; it
    stops when a round does not improve kappa. Starts from `initial` (0.5/1.5/2.5/3.5).
    """
    true_grades = np.asarray(true_grades)
    predictions = np.asarray(predictions, dtype=np.float64)
    thresholds = list(initial)
    num_grades = len(thresholds) + 1
    low_end = min(float(predictions.min()), thresholds[0]) - 1.0
    high_end = max(float(predictions.max()), thresholds[-1]) + 1.0

    def kappa(values: Sequence[float]) -> float:
        graded = apply_grade_thresholds(predictions, values)
        return quadratic_weighted_kappa(true_grades, graded, num_grades)

    best = kappa(thresholds)
    for _ in range(max_rounds):
        improved = False
        for i in range(len(thresholds)):
            low = thresholds[i - 1] if i > 0 else low_end
            high = thresholds[i + 1] if i + 1 < len(thresholds) else high_end
            for value in np.linspace(low, high, candidates_per_threshold + 2)[1:-1]:
                trial = thresholds[:i] + [float(value)] + thresholds[i + 1 :]
                score = kappa(trial)
                if score > best + 1e-12:
                    best, thresholds, improved = score, trial, True
        if not improved:
            break
    return tuple(thresholds)


def evaluate_screening(
    test_grades: np.ndarray,
    test_predictions: np.ndarray,
    validation_grades: np.ndarray,
    validation_predictions: np.ndarray,
    test_patient_ids: Sequence[str] | np.ndarray | None = None,
    config: ScreeningConfig = ScreeningConfig(),
) -> dict:
    """All image-level metrics, with thresholds chosen on validation and applied to test.

    Returns
    -------
    A JSON-ready dict: per binary task (`referable_dr`, `any_dr`) the AUC, its bootstrap CI,
    the ROC curve and one operating point per target sensitivity; then `kappa` with the
    tuned thresholds and the kappa of the default thresholds.
    """
    result: dict = {}
    for task, min_grade in BINARY_TASKS.items():
        test_labels = binary_labels(test_grades, min_grade)
        validation_labels = binary_labels(validation_grades, min_grade)
        curve = roc_curve(test_labels, test_predictions)
        low, high = auc_confidence_interval(
            test_labels,
            test_predictions,
            test_patient_ids,
            config.n_bootstrap,
            config.ci_level,
            config.seed,
        )
        points = {}
        for target in config.target_sensitivities:
            threshold = threshold_for_sensitivity(validation_labels, validation_predictions, target)
            points[f"{target:.2f}"] = dataclasses.asdict(
                operating_point(test_labels, test_predictions, threshold)
            )
        result[task] = {
            "auc": roc_auc(test_labels, test_predictions),
            "auc_ci": [low, high],
            "ci_level": config.ci_level,
            "n_bootstrap": config.n_bootstrap,
            "bootstrap_unit": "image" if test_patient_ids is None else "patient",
            "positives": int(test_labels.sum()),
            "negatives": int((~test_labels).sum()),
            "roc": {
                "false_positive_rate": curve.false_positive_rate.tolist(),
                "true_positive_rate": curve.true_positive_rate.tolist(),
            },
            "operating_points": points,
        }
    thresholds = tune_grade_thresholds(validation_grades, validation_predictions)
    result["kappa"] = {
        "quadratic_weighted_kappa": quadratic_weighted_kappa(
            test_grades, apply_grade_thresholds(test_predictions, thresholds)
        ),
        "grade_thresholds": list(thresholds),
        "kappa_default_thresholds": quadratic_weighted_kappa(
            test_grades, apply_grade_thresholds(test_predictions, DEFAULT_GRADE_THRESHOLDS)
        ),
    }
    return result
