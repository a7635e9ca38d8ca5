"""Tests of reliability bins and expected calibration error on a hand-made case."""

import numpy as np
import pytest

from drscreen.evaluation import calibration


def test_reliability_bins_and_ece_by_hand():
    """Two bins: [0, .5) holds .1, .3 (one positive), [.5, 1] holds .6, .8, 1.0 (two)."""
    labels = [0, 1, 1, 1, 0]
    probabilities = [0.1, 0.3, 0.6, 0.8, 1.0]
    bins = calibration.reliability_bins(labels, probabilities, n_bins=2)
    np.testing.assert_array_equal(bins.counts, [2, 3])
    np.testing.assert_allclose(bins.mean_probability, [0.2, 0.8])
    np.testing.assert_allclose(bins.observed_frequency, [0.5, 2 / 3])
    # ECE = 2/5 * |0.5 - 0.2| + 3/5 * |2/3 - 0.8| = 0.12 + 0.08
    assert bins.expected_calibration_error() == pytest.approx(0.2)


def test_empty_bins_are_nan_and_ignored():
    """Bins without images carry NaN and do not enter the ECE."""
    bins = calibration.reliability_bins([1, 0], [0.95, 0.95], n_bins=4)
    np.testing.assert_array_equal(bins.counts, [0, 0, 0, 2])
    assert np.isnan(bins.mean_probability[0])
    assert bins.expected_calibration_error() == pytest.approx(0.45)


def test_probabilities_outside_unit_interval_are_rejected():
    """A score that is not a probability is refused."""
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration.reliability_bins([1], [1.5])
