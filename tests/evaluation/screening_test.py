"""Tests of image-level screening metrics against sklearn and hand-computed values."""

import numpy as np
import pytest
from sklearn import metrics

from drscreen.evaluation import screening


def _tied_data(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = np.round(rng.normal(size=n) + labels, 1)  # rounding creates many ties
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_ties(seed):
    """The exact tie-aware AUC equals sklearn's."""
    labels, scores = _tied_data(seed)
    assert screening.roc_auc(labels, scores) == pytest.approx(
        metrics.roc_auc_score(labels, scores), abs=1e-12
    )


def test_roc_auc_all_tied_is_one_half():
    """Every positive tied with every negative gives 1/2."""
    assert screening.roc_auc([1, 0, 1, 0], [3.0, 3.0, 3.0, 3.0]) == 0.5


def test_roc_curve_matches_sklearn():
    """One point per distinct score, as sklearn without dropping intermediate points."""
    labels, scores = _tied_data(3)
    curve = screening.roc_curve(labels, scores)
    fpr, tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.false_positive_rate, fpr)
    np.testing.assert_allclose(curve.true_positive_rate, tpr)


def test_roc_rejects_single_class():
    """A ROC analysis needs both classes."""
    with pytest.raises(ValueError, match="both positives and negatives"):
        screening.roc_auc([1, 1], [0.2, 0.3])


def test_bootstrap_matches_loop_over_resampled_images():
    """Each vectorised replicate equals sklearn's AUC on the same resampled indices."""
    labels, scores = _tied_data(4, n=60)
    aucs = screening.bootstrap_auc(labels, scores, n_bootstrap=50, seed=7)
    draws = np.random.default_rng(7).integers(0, 60, size=(50, 60))
    expected = [metrics.roc_auc_score(labels[d], scores[d]) for d in draws]
    np.testing.assert_allclose(aucs, expected, atol=1e-12)


def test_bootstrap_resamples_whole_patients():
    """With patient ids, a replicate holds every image of each drawn patient."""
    labels, scores = _tied_data(5, n=40)
    patient_ids = np.array([f"p{i // 2:02d}" for i in range(40)])  # two eyes per patient
    aucs = screening.bootstrap_auc(labels, scores, patient_ids, n_bootstrap=30, seed=3)
    draws = np.random.default_rng(3).integers(0, 20, size=(30, 20))
    expected = []
    for draw in draws:
        images = np.concatenate([[2 * p, 2 * p + 1] for p in draw])
        if labels[images].all() or not labels[images].any():
            expected.append(np.nan)
        else:
            expected.append(metrics.roc_auc_score(labels[images], scores[images]))
    np.testing.assert_allclose(aucs, expected, atol=1e-12)


def test_confidence_interval_brackets_auc_and_is_seeded():
    """The 95% CI contains the AUC and is reproducible for a seed."""
    labels, scores = _tied_data(6, n=300)
    low, high = screening.auc_confidence_interval(labels, scores, n_bootstrap=200, seed=1)
    assert low < screening.roc_auc(labels, scores) < high
    assert (low, high) == screening.auc_confidence_interval(labels, scores, n_bootstrap=200, seed=1)


def test_threshold_for_sensitivity_by_hand():
    """Scores of positives 0.9, 0.8, 0.7, 0.2: 75% needs 0.7, 90% needs 0.2."""
    labels = [1, 1, 1, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.2, 0.5, 0.1]
    assert screening.threshold_for_sensitivity(labels, scores, 0.75) == 0.7
    assert screening.threshold_for_sensitivity(labels, scores, 0.90) == 0.2


def test_operating_point_by_hand():
    """Threshold 0.5 on the hand case: TP 2, FP 1, TN 1, FN 2."""
    point = screening.operating_point(
        [1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.2, 0.5, 0.1], threshold=0.5
    )
    assert (point.true_positives, point.false_positives) == (2, 1)
    assert (point.true_negatives, point.false_negatives) == (1, 2)
    assert point.sensitivity == 0.5
    assert point.specificity == 0.5
    assert point.ppv == pytest.approx(2 / 3)
    assert point.npv == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_kappa_matches_sklearn(seed):
    """Quadratic weighted kappa equals sklearn's."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 300)
    predicted = np.clip(truth + rng.integers(-1, 2, 300), 0, 4)
    assert screening.quadratic_weighted_kappa(truth, predicted) == pytest.approx(
        metrics.cohen_kappa_score(truth, predicted, weights="quadratic"), abs=1e-12
    )


def test_apply_grade_thresholds_by_hand():
    """A value on a threshold takes the higher grade."""
    graded = screening.apply_grade_thresholds([-1.0, 0.5, 1.49, 2.5, 3.6], (0.5, 1.5, 2.5, 3.5))
    np.testing.assert_array_equal(graded, [0, 1, 1, 3, 4])


def test_tuned_thresholds_fix_a_compressed_regression():
    """ŷ = grade / 2 + noise is graded badly at 0.5/1.5/...; tuning recovers the scale."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 400)
    predictions = truth / 2 + rng.normal(0, 0.1, 400)
    default = screening.quadratic_weighted_kappa(
        truth, screening.apply_grade_thresholds(predictions, (0.5, 1.5, 2.5, 3.5))
    )
    thresholds = screening.tune_grade_thresholds(truth, predictions)
    tuned = screening.quadratic_weighted_kappa(
        truth, screening.apply_grade_thresholds(predictions, thresholds)
    )
    assert np.all(np.diff(thresholds) > 0)
    assert tuned > 0.97 > default
    np.testing.assert_allclose(thresholds, [0.25, 0.75, 1.25, 1.75], atol=0.15)


def test_evaluate_screening_uses_validation_thresholds_on_test():
    """Operating thresholds come from validation and their statistics from test."""
    rng = np.random.default_rng(2)
    val_grades, test_grades = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    val_pred = val_grades + rng.normal(0, 0.8, 200)
    test_pred = test_grades + rng.normal(0, 0.8, 200)
    config = screening.ScreeningConfig(n_bootstrap=100)
    result = screening.evaluate_screening(
        test_grades, test_pred, val_grades, val_pred, None, config
    )
    point = result["referable_dr"]["operating_points"]["0.90"]
    threshold = screening.threshold_for_sensitivity(val_grades >= 2, val_pred, 0.90)
    assert point["threshold"] == threshold
    assert point["sensitivity"] == pytest.approx(np.mean(test_pred[test_grades >= 2] >= threshold))
    assert result["any_dr"]["auc"] == pytest.approx(
        metrics.roc_auc_score(test_grades >= 1, test_pred)
    )
    assert result["kappa"]["quadratic_weighted_kappa"] >= 0.0
