"""Uncertainty from test-time augmentation, and referral to a human by uncertainty.

A screening system that says how sure it is can send its least certain cases to a grader
and be trusted with the rest. As in the RETINA benchmark (Band et al. 2021, uncertainty-
baselines), the referral curve refers the most uncertain share of the images (0-50 %) and
scores the system on the images it keeps: their ROC AUC and its accuracy at the operating
threshold chosen on validation. Two uncertainties are compared:

- ``tta_spread``: the standard deviation, over the test-time views of an image
  (`drscreen.heatmaps.tta`), of the calibrated referable-DR probability: how much the answer
  moves when the photograph is flipped;
- ``entropy``: the binary entropy of the view-averaged probability, which adds how close the
  answer is to 0.5.

Pure numpy over per-image arrays; must not run models.
"""

import numpy as np

from drscreen.evaluation import screening

REFERRED_FRACTIONS = tuple(round(0.05 * step, 2) for step in range(11))
"""Shares of the images referred to a grader, most uncertain first: 0 to 50 % in 5 % steps."""
UNCERTAINTIES = ("tta_spread", "entropy")


def tta_spread(view_probabilities: np.ndarray) -> np.ndarray:
    """(N,) standard deviation over the views (axis 1) of each image's probability."""
    return np.asarray(view_probabilities, np.float64).std(axis=1)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """(N,) binary entropy in bits of probabilities (0 at 0 or 1, 1 at 0.5)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def uncertainties(view_probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Each of `UNCERTAINTIES` per image, from (N, V) view probabilities."""
    return {
        "tta_spread": tta_spread(view_probabilities),
        "entropy": entropy(np.asarray(view_probabilities, np.float64).mean(axis=1)),
    }


def retained(uncertainty: np.ndarray, referred_fraction: float) -> np.ndarray:
    """Boolean (N,): the images kept when the most uncertain ``referred_fraction`` are
    referred (``round(fraction * N)`` images; ties broken by position, stable)."""
    uncertainty = np.asarray(uncertainty, np.float64)
    referred = int(round(referred_fraction * uncertainty.size))
    keep = np.ones(uncertainty.size, bool)
    if referred:
        order = np.argsort(-uncertainty, kind="stable")
        keep[order[:referred]] = False
    return keep


def referral_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    uncertainty: np.ndarray,
    threshold: float,
    fractions: tuple[float, ...] = REFERRED_FRACTIONS,
) -> dict:
    """AUC and accuracy on the retained images as the most uncertain are referred.

    Parameters
    ----------
    labels:
        (N,) True where the image is referable.
    scores:
        (N,) the score thresholded (higher: more referable).
    uncertainty:
        (N,) higher: referred first.
    threshold:
        ``score >= threshold`` is a referral decision (chosen on validation).
    fractions:
        Shares referred.

    Returns
    -------
    ``referred_fraction``, ``retained_images``, ``auc`` (None where the retained images hold
    one class only) and ``accuracy`` lists, one entry per fraction.
    """
    labels = np.asarray(labels, bool)
    decisions = np.asarray(scores, np.float64) >= threshold
    curve: dict[str, list] = {
        "referred_fraction": [],
        "retained_images": [],
        "auc": [],
        "accuracy": [],
    }
    for fraction in fractions:
        keep = retained(uncertainty, fraction)
        kept = labels[keep]
        both = kept.any() and not kept.all()
        curve["referred_fraction"].append(float(fraction))
        curve["retained_images"].append(int(keep.sum()))
        curve["auc"].append(screening.roc_auc(kept, np.asarray(scores)[keep]) if both else None)
        curve["accuracy"].append(float(np.mean(decisions[keep] == kept)) if keep.any() else None)
    return curve
