"""The referable-DR calibration section of a run's final metrics."""

import numpy as np
import pytest

from drscreen.evaluation.calibration import expected_calibration_error
from drscreen.models.calibration import (
    fit_referable_calibration,
    referable_probability,
)
from drscreen.training.evaluate import calibration_metrics


def _split(seed: int, n: int = 300) -> dict[str, np.ndarray]:
    """Grades whose referability follows a softer logistic (midpoint 1.0, scale 0.5) of ŷ."""
    rng = np.random.default_rng(seed)
    predictions = rng.uniform(0.0, 3.5, n)
    referable = rng.random(n) < referable_probability(predictions, midpoint=1.0, scale=0.5)
    grades = np.where(referable, rng.integers(2, 5, n), rng.integers(0, 2, n))
    return {"predictions": predictions, "grades": grades}


def test_fitted_on_validation_and_improves_calibration():
    """The fit is the validation fit; fitted ECE is below the default's on both splits."""
    validation, test = _split(0), _split(1)
    section = calibration_metrics(validation, test)
    expected = fit_referable_calibration(validation["predictions"], validation["grades"] >= 2)
    assert section["fitted"] == expected.to_dict()
    for name, split in (("validation", validation), ("test", test)):
        errors = section["expected_calibration_error"][name]
        labels = split["grades"] >= 2
        assert errors["default"] == pytest.approx(
            expected_calibration_error(labels, referable_probability(split["predictions"]))
        )
        assert errors["fitted"] < errors["default"]


def test_one_class_validation_is_reported_not_raised():
    """No referable eye in validation: no fit, the reason, and the default ECE only."""
    validation = {"predictions": np.array([0.1, 0.5, 1.2]), "grades": np.array([0, 1, 0])}
    section = calibration_metrics(validation, _split(1))
    assert section["fitted"] is None
    assert "all 3 labels are 0" in section["reason"]
    assert set(section["expected_calibration_error"]["test"]) == {"default"}
