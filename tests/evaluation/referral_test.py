"""Referral by uncertainty: hand-worked curves and uncertainties, AUC against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from drscreen.evaluation.referral import entropy, referral_curve, retained, uncertainties


def test_entropy_by_hand():
    np.testing.assert_allclose(entropy(np.array([0.5, 0.0, 1.0, 0.25])),
                               [1.0, 0.0, 0.0, 0.8112781244591328], atol=1e-9)  # fmt: skip


def test_uncertainties_of_view_probabilities():
    """Spread is the std over views; entropy is of the views' mean."""
    views = np.array([[0.2, 0.4], [0.9, 0.9]])
    result = uncertainties(views)
    np.testing.assert_allclose(result["tta_spread"], [0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(result["entropy"], entropy(np.array([0.3, 0.9])))


def test_retained_drops_the_most_uncertain_share():
    uncertainty = np.array([0.1, 0.9, 0.5, 0.7])
    assert list(retained(uncertainty, 0.5)) == [True, False, True, False]
    assert retained(uncertainty, 0.0).all()


def test_referral_curve_by_hand():
    """Referring the two most uncertain images (the two errors) leaves a perfect classifier."""
    labels = np.array([1, 1, 0, 0, 1, 0], bool)
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.7])  # the last two are wrong at 0.5
    uncertainty = np.array([0.0, 0.1, 0.0, 0.1, 0.9, 0.8])
    curve = referral_curve(labels, scores, uncertainty, 0.5, fractions=(0.0, 1 / 3, 0.5))
    assert curve["retained_images"] == [6, 4, 3]
    assert curve["accuracy"] == pytest.approx([4 / 6, 1.0, 1.0])
    assert curve["auc"][0] == pytest.approx(roc_auc_score(labels, scores))
    assert curve["auc"][1] == pytest.approx(1.0)
    assert curve["auc"][2] == pytest.approx(1.0)  # kept: 0, 2 and 3 (ties: by position)
