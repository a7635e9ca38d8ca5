"""The calibration and heatmap-mass sections of a run's final metrics."""

import numpy as np
import pytest

from drscreen.evaluation.calibration import expected_calibration_error
from drscreen.models.calibration import (
    fit_referable_calibration,
    referable_probability,
)
from drscreen.training import evaluate
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


def test_heatmap_lesion_mass_averages_images_with_lesions():
    """Images without lesions (NaN) are left out of the mean and the count."""
    assert evaluate.heatmap_lesion_mass(np.array([0.2, np.nan, 0.4])) == {
        "relevance_mass_in_lesions": pytest.approx(0.3),
        "images_with_lesions": 2,
    }


def test_lesion_mass_uses_the_union_of_lesion_types():
    """Mass inside the union of the masks of every lesion type, by hand; NaN without lesion."""
    heatmap = np.array([[1.0, 2.0], [3.0, 4.0]])
    masks = {
        "microaneurysm": np.array([[1, 0], [0, 0]]),
        "hard_exudate": np.array([[0, 0], [0, 1]]),
    }
    assert evaluate._lesion_mass(heatmap, masks) == pytest.approx((1.0 + 4.0) / 10.0)
    assert np.isnan(evaluate._lesion_mass(heatmap, {"microaneurysm": np.zeros((2, 2))}))
    assert np.isnan(evaluate._lesion_mass(heatmap, {}))
