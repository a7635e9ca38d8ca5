"""The shared penalised logistic regression against scikit-learn."""

import numpy as np
from sklearn.linear_model import LogisticRegression

from drscreen.models.logistic import fit_logistic


def test_matches_sklearn_with_an_unpenalised_intercept():
    """Coefficients equal LogisticRegression(C=1/l2)'s (sklearn leaves the intercept free)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3))
    y = (x @ [1.5, -2.0, 0.5] + 0.3 + rng.logistic(size=300)) > 0
    l2 = 2.0
    weights = fit_logistic(np.concatenate([x, np.ones((300, 1))], axis=1), y, np.r_[[l2] * 3, 0])
    reference = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(weights[:3], reference.coef_[0], atol=1e-6)
    np.testing.assert_allclose(weights[3], reference.intercept_[0], atol=1e-6)


def test_separable_data_stay_finite_under_a_prior():
    """Perfectly separated labels: the prior keeps the slope finite."""
    x = np.array([[-2.0, 1], [-1.0, 1], [1.0, 1], [2.0, 1]])
    weights = fit_logistic(x, np.array([0, 0, 1, 1]), np.array([1.0, 0.0]))
    assert np.all(np.isfinite(weights)) and weights[0] > 0
    assert abs(weights[1]) < 1e-8  # symmetric data: no intercept
