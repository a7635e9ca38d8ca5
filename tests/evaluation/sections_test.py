"""The sections of a model's metrics: screening, calibration and target-named lesion figures."""

import numpy as np
import pytest

from drscreen.evaluation import sections
from drscreen.evaluation.calibration import expected_calibration_error
from drscreen.models.calibration import (
    Calibration,
    fit_referable_calibration,
    referable_probability,
)


def _arrays(grades, predictions, patients=None) -> dict[str, np.ndarray]:
    ids = np.array([f"i{k}" for k in range(len(grades))])
    return {
        "grades": np.asarray(grades),
        "predictions": np.asarray(predictions, np.float64),
        "image_ids": ids,
        "patient_ids": ids if patients is None else np.asarray(patients),
    }


def _split(seed: int, n: int = 300) -> dict[str, np.ndarray]:
    """Grades whose referability follows a softer logistic (midpoint 1.0, scale 0.5) of ŷ."""
    rng = np.random.default_rng(seed)
    predictions = rng.uniform(0.0, 3.5, n)
    referable = rng.random(n) < referable_probability(predictions, midpoint=1.0, scale=0.5)
    grades = np.where(referable, rng.integers(2, 5, n), rng.integers(0, 2, n))
    return _arrays(grades, predictions)


def test_screening_skips_without_grades():
    """Ungraded images (-1) give a skipped image-level section that says why."""
    arrays = _arrays(np.full(4, -1), np.zeros(4))
    assert sections.screening_sections(arrays, None, 10) == {
        "screening": {"skipped": "the dataset has no grades"}
    }
    validation = _arrays(np.full(4, -1), np.zeros(4))
    graded = _arrays([0, 2, 1, 3], [0.0, 2.0, 1.0, 3.0])
    skipped = sections.screening_sections(graded, validation, 10)["screening"]["skipped"]
    assert skipped == "the validation images have no grades"


def test_screening_uses_validation_thresholds():
    """Operating points come from validation; patient level appears with paired eyes."""
    arrays = _arrays(
        [0, 2, 1, 1, 0, 0], [0.1, 2.2, 1.2, 1.0, 0.4, 0.2], ["1", "1", "2", "2", "3", "3"]
    )
    validation = {**arrays, "predictions": arrays["predictions"] + 1.0}
    result = sections.screening_sections(arrays, validation, n_bootstrap=20)
    assert set(result) == {"screening", "patients"}
    point = result["screening"]["referable_dr"]["operating_points"]["0.90"]
    assert point["threshold"] == pytest.approx(3.2)  # the referable image's validation ŷ
    assert result["screening"]["referable_dr"]["auc"] == 1.0
    assert result["patients"]["referable_dr"]["auc_max"] == 1.0
    all_referable = {**arrays, "grades": np.array([0, 2, 2, 1, 3, 0])}
    skipped = sections.screening_sections(all_referable, validation, 20)["patients"]
    assert "all positive for referable_dr" in skipped["skipped"]


def test_calibration_scores_the_given_calibration():
    """The scored calibration's bins of sigmoid((ŷ - midpoint) / scale), and both parameters."""
    arrays = _arrays([0, 2, 1, 3], [0.0, 2.0, 1.0, 3.0])
    section = sections.calibration_section(arrays, arrays, Calibration(1.0, 1e-3), "here")
    assert (section["midpoint"], section["scale"], section["source"]) == (1.0, 1e-3, "here")
    assert section["counts"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2]  # p = 0, 1, 0.5, 1
    assert section["expected_calibration_error"] == pytest.approx(0.5 / 4)  # only p = 0.5 misses


def test_calibration_is_fitted_on_validation_and_improves_it():
    """The fit is the validation fit, scored by default; fitted ECE beats the default's."""
    validation, test = _split(0), _split(1)
    section = sections.calibration_section(test, validation)
    expected = fit_referable_calibration(validation["predictions"], validation["grades"] >= 2)
    assert section["fitted"] == expected.to_dict()
    assert (section["midpoint"], section["scale"]) == (expected.midpoint, expected.scale)
    assert section["source"] == sections.FITTED_SOURCE
    for name, split in (("validation", validation), ("evaluated", test)):
        errors = section["expected_calibration_error_by_split"][name]
        labels = split["grades"] >= 2
        assert errors["default"] == pytest.approx(
            expected_calibration_error(labels, referable_probability(split["predictions"]))
        )
        assert errors["fitted"] < errors["default"]
    assert section["expected_calibration_error"] == errors["fitted"]


def test_one_class_validation_is_reported_not_raised():
    """No referable eye in validation: no fit, the reason, the default scored and its ECE only."""
    validation = _arrays([0, 1, 0], [0.1, 0.5, 1.2])
    section = sections.calibration_section(_split(1), validation)
    assert section["fitted"] is None
    assert "all 3 labels are 0" in section["reason"]
    assert set(section["expected_calibration_error_by_split"]["evaluated"]) == {"default"}
    assert (section["midpoint"], section["scale"], section["source"]) == (1.5, 0.25, "default")


def test_validation_summary_by_hand():
    """Validation AUCs and MSE, None for an AUC whose task has one class."""
    summary = sections.validation_summary(_arrays([0, 2, 1, -1], [0.0, 2.0, 1.5, 9.0]))
    assert summary["images"] == 4
    assert summary["grade_mse"] == pytest.approx((0.0 + 0.0 + 0.25) / 3)
    assert summary["referable_dr_auc"] == 1.0 and summary["any_dr_auc"] == 1.0
    assert sections.validation_summary(_arrays([0, 1], [0.0, 1.0]))["referable_dr_auc"] is None


def test_method_summary_names_each_target():
    """Each headline figure is read from its own target: red, bright or all lesions."""
    entry = {"froc_score": 0.5, "sensitivity_at_fp": {"1": 0.6, "8": 0.9}, "image_auc": 0.8}
    lesion_metrics = {
        "red_lesions": {**entry, "relevance_mass": 0.25, "pointing_game": 0.75},
        "all_lesions": {**entry, "relevance_mass": 0.4, "pointing_game": 0.9},
        "red_lesions_ignoring_bright": {"froc_score": 0.55},
    }
    summary = sections.method_summary(lesion_metrics, {"deletion_auc": 0.1})
    assert summary["relevance_mass/red_lesions"] == 0.25
    assert summary["relevance_mass/all_lesions"] == 0.4
    assert summary["sensitivity_at_1fp/red_lesions"] == 0.6
    assert summary["sensitivity_at_8fp/all_lesions"] == 0.9
    assert summary["pointing_game/all_lesions"] == 0.9
    assert summary["froc_score/bright_lesions"] is None
    assert summary["deletion_auc"] == 0.1 and summary["insertion_auc"] is None
    assert summary["froc_score/red_lesions_ignoring_bright"] == 0.55
    assert summary["froc_score/bright_lesions_ignoring_red"] is None
    assert len(summary) == 3 * 6 + 2 + 2
