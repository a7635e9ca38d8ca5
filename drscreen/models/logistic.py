"""Penalised logistic regression by Newton's method: the fit behind calibration and quality.

One small numpy solver, so that the referable-DR calibration (`drscreen.models.calibration`)
and the gradability gate (`drscreen.models.quality`) fit their logistic models the same
way: sklearn's ``LogisticRegression`` objective (summed log loss plus a Gaussian prior), with
a prior strength per coefficient so that an intercept can go unpenalised.
"""

import numpy as np


def fit_logistic(design: np.ndarray, labels: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Weights minimising ``sum(log loss of sigmoid(design @ w)) + 0.5 * sum(prior * w**2)``.

    Newton's method (IRLS) with step halving, started from zero slopes and the intercept of
    the class balance when the last column of ``design`` is all ones.

    Parameters
    ----------
    design:
        (N, K) float64 inputs; an intercept is a column of ones.
    labels:
        (N,) 0/1 targets, both classes present.
    prior:
        (K,) non-negative prior strengths (0: unpenalised).

    Returns
    -------
    (K,) fitted weights.
    """
    y = np.asarray(labels, dtype=np.float64)
    positives = float(y.sum())
    weights = np.zeros(design.shape[1])
    if np.all(design[:, -1] == 1.0):
        weights[-1] = np.log(positives / (y.size - positives))

    def objective(w: np.ndarray) -> float:
        logits = design @ w
        return float(np.sum(np.logaddexp(0.0, logits) - y * logits) + 0.5 * prior @ (w * w))

    value = objective(weights)
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ weights)))
        gradient = design.T @ (p - y) + prior * weights
        hessian = (design * (p * (1.0 - p))[:, np.newaxis]).T @ design + np.diag(prior)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(design.shape[1]), gradient)
        rate = 1.0
        while objective(weights - rate * step) > value and rate > 1e-10:
            rate /= 2
        weights = weights - rate * step
        value = objective(weights)
        if np.max(np.abs(rate * step)) < 1e-10:
            break
    return weights
