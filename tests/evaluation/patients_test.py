"""Tests of patient-level combination of both eyes."""

import numpy as np
import pytest
from sklearn import metrics

from drscreen.evaluation import patients

IDS = ["a", "a", "b", "b", "c"]
SCORES = [0.2, 0.9, 0.4, 0.6, 0.5]
LABELS = [0, 1, 0, 0, 0]


def test_patient_scores_by_hand():
    """Max and mean of each patient's eyes, patients sorted by id."""
    ids, maxima = patients.patient_scores(SCORES, IDS, "max")
    _, means = patients.patient_scores(SCORES, IDS, "mean")
    np.testing.assert_array_equal(ids, ["a", "b", "c"])
    np.testing.assert_allclose(maxima, [0.9, 0.6, 0.5])
    np.testing.assert_allclose(means, [0.55, 0.5, 0.5])


def test_patient_label_is_any_eye():
    """A patient with one positive eye is positive."""
    _, labels = patients.patient_labels(LABELS, IDS)
    np.testing.assert_array_equal(labels, [True, False, False])


def test_patient_auc_matches_sklearn_on_combined_scores():
    """Patient AUC is sklearn's AUC over the hand-combined patient scores."""
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(50), 2).astype(str)
    labels = rng.random(100) < 0.3
    scores = rng.normal(size=100) + labels
    pairs = scores.reshape(50, 2)
    patient_labels = labels.reshape(50, 2).any(axis=1)
    order = np.argsort(np.arange(50).astype(str))  # ids sort as strings
    for reduction, combined in (("max", pairs.max(axis=1)), ("mean", pairs.mean(axis=1))):
        assert patients.patient_auc(labels, scores, ids, reduction) == pytest.approx(
            metrics.roc_auc_score(patient_labels[order], combined[order])
        )


def test_unknown_reduction_is_rejected():
    """Only max and mean are offered."""
    with pytest.raises(ValueError, match="median"):
        patients.patient_scores(SCORES, IDS, "median")
