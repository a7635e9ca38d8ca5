"""Calibration of the referable-DR probability: reliability-diagram bins and expected error."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width probability bins over [0, 1].

    Attributes
    ----------
    edges:
        (B + 1,) bin edges; bin b holds probabilities in [edges[b], edges[b + 1]), the last
        bin also holds 1.0.
    mean_probability:
        (B,) mean predicted probability in each bin (NaN when empty).
    observed_frequency:
        (B,) fraction of positives in each bin (NaN when empty).
    counts:
        (B,) number of images in each bin.
    """

    edges: np.ndarray
    mean_probability: np.ndarray
    observed_frequency: np.ndarray
    counts: np.ndarray

    def expected_calibration_error(self) -> float:
        """Count-weighted mean |observed frequency - mean probability| over non-empty bins."""
        filled = self.counts > 0
        gaps = np.abs(self.observed_frequency[filled] - self.mean_probability[filled])
        return float(np.sum(self.counts[filled] * gaps) / self.counts.sum())


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10
) -> ReliabilityBins:
    """Bin probabilities into `n_bins` equal-width bins and compare with observed frequencies."""
    labels = np.asarray(labels).astype(np.float64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if labels.shape != probabilities.shape:
        raise ValueError(
            f"labels {labels.shape} and probabilities {probabilities.shape} differ in length"
        )
    if probabilities.size == 0:
        raise ValueError("no probabilities to calibrate")
    if np.any((probabilities < 0) | (probabilities > 1)) or not np.all(np.isfinite(probabilities)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.minimum((probabilities * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_probability = np.bincount(index, weights=probabilities, minlength=n_bins) / counts
        observed = np.bincount(index, weights=labels, minlength=n_bins) / counts
    return ReliabilityBins(edges, mean_probability, observed, counts)


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10
) -> float:
    """Expected calibration error over `n_bins` equal-width bins."""
    return reliability_bins(labels, probabilities, n_bins).expected_calibration_error()


def evaluate_calibration(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> dict:
    """Reliability bins and ECE as a JSON-ready dict."""
    bins = reliability_bins(labels, probabilities, n_bins)
    return {
        "expected_calibration_error": bins.expected_calibration_error(),
        "bin_edges": bins.edges.tolist(),
        "mean_probability": bins.mean_probability.tolist(),
        "observed_frequency": bins.observed_frequency.tolist(),
        "counts": bins.counts.tolist(),
    }
