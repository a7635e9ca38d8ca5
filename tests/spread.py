"""Tolerances relative to the spread between images, so a comparison can fail.

A difference between two runtimes means something only next to the difference between two
photographs: with tolerance ``fraction`` x the smallest gap between the reference's
per-image values (``fraction`` < 0.5), swapping two photographs or answering a constant fails.
"""

import numpy as np


def smallest_gap(values: np.ndarray) -> float:
    """The smallest distance between two entries of the 1-D ``values``."""
    ordered = np.sort(np.asarray(values, np.float64).ravel())
    return float(np.diff(ordered).min())


def assert_within_spread(actual, expected, fraction: float, name: str = "") -> None:
    """max |actual - expected| <= fraction x smallest_gap(expected), per-image values."""
    if not 0 < fraction < 0.5:
        raise ValueError(f"fraction must be in (0, 0.5) to catch a swap, got {fraction}")
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    gap = smallest_gap(expected)
    difference = float(np.abs(actual - expected).max())
    assert difference <= fraction * gap, (
        f"{name}: max difference {difference:.3g} > {fraction} x the smallest gap between "
        f"images {gap:.3g} (reference {expected})"
    )
