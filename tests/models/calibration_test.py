"""Tests of the grade -> referable-DR probability mapping."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.models.calibration import (
    Calibration,
    fit_referable_calibration,
    referable_probability,
    resolve_calibration,
)


def test_logistic_values_by_hand():
    """p = 1 / (1 + exp(-(g - 1.5) / 0.25)): 0.5 at the midpoint, e^4 odds one grade away."""
    grades = np.array([1.5, 2.0, 1.0, 2.5])
    logistic = 1 / (1 + np.exp(-np.array([0.0, 2.0, -2.0, 4.0])))  # (g - 1.5) / 0.25
    expected = logistic
    np.testing.assert_allclose(referable_probability(grades), expected, rtol=1e-12)


def test_parameters_shift_and_sharpen():
    """midpoint moves the 0.5 point; scale sets the slope."""
    assert referable_probability(3.0, midpoint=3.0, scale=2.0) == pytest.approx(0.5)
    expected = 1 / (1 + np.exp(-2))  # (4 - 3) / 0.5 = 2
    assert referable_probability(4.0, midpoint=3.0, scale=0.5) == pytest.approx(expected)


def test_tensor_in_tensor_out_inside_tf_function():
    """A tensor gives the same values as numpy, also in graph mode."""
    grades = np.array([0.0, 1.2, 1.8, 4.0], np.float32)
    graph = tf.function(lambda g: referable_probability(g, scale=0.4))
    np.testing.assert_allclose(
        graph(tf.constant(grades)).numpy(), referable_probability(grades, scale=0.4), rtol=1e-6
    )


def test_extreme_grades_do_not_overflow():
    """Saturates to exactly 0 and 1 without warnings."""
    np.testing.assert_array_equal(referable_probability(np.array([-1e4, 1e4])), [0.0, 1.0])


def test_bad_scale():
    """A non-positive scale is rejected by name."""
    with pytest.raises(ValueError, match="scale"):
        referable_probability(1.0, scale=0.0)


def _platt_reference(grades: np.ndarray, labels: np.ndarray, c: float) -> tuple[float, float]:
    """sklearn's (midpoint, scale) for an L2-penalised slope, unpenalised intercept."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(grades[:, None], labels)
    slope, intercept = fit.coef_[0, 0], fit.intercept_[0]
    return -intercept / slope, 1 / slope


@pytest.mark.parametrize("l2", [1e-6, 1.0])
def test_fit_matches_sklearn(l2):
    """Same optimum as LogisticRegression(C=1/l2) on synthetic miscalibrated grades."""
    rng = np.random.default_rng(0)
    grades = rng.uniform(-0.5, 4.5, 400)
    labels = rng.random(400) < referable_probability(grades, midpoint=1.1, scale=0.6)
    fitted = fit_referable_calibration(grades, labels, l2=l2)
    midpoint, scale = _platt_reference(grades, labels.astype(int), 1 / l2)
    assert fitted.midpoint == pytest.approx(midpoint, rel=1e-5)
    assert fitted.scale == pytest.approx(scale, rel=1e-5)
    if l2 < 1e-3:
        assert fitted.midpoint == pytest.approx(1.1, abs=0.15)
        assert fitted.scale == pytest.approx(0.6, abs=0.15)


def test_fit_by_hand_on_a_symmetric_case():
    """Grades 0, 1, 2, 3 labelled 0, 1, 0, 1, no prior. The score equations are sum(p) = 2
    and p1 + 2 p2 + 3 p3 = 4; the symmetric solution p(g) + p(3 - g) = 1 (midpoint 1.5)
    satisfies the first and reduces the second to sigmoid(a / 2) + 3 sigmoid(3a / 2) = 3."""
    from scipy.optimize import brentq

    slope = brentq(lambda a: 1 / (1 + np.exp(-a / 2)) + 3 / (1 + np.exp(-1.5 * a)) - 3, 0, 5)
    assert slope == pytest.approx(0.91, abs=0.01)
    fitted = fit_referable_calibration(np.array([0.0, 1.0, 2.0, 3.0]), [0, 1, 0, 1], l2=1e-12)
    assert fitted.midpoint == pytest.approx(1.5, abs=1e-8)
    assert fitted.scale == pytest.approx(1 / slope, rel=1e-8)


def test_separable_data_keeps_a_finite_scale():
    """Perfectly separated grades: the slope prior stops the scale shrinking to 0."""
    grades = np.array([0.0, 0.2, 0.9, 2.1, 2.6, 3.8])
    fitted = fit_referable_calibration(grades, grades > 1.5)
    assert np.isfinite(fitted.scale) and 0 < fitted.scale < 0.5
    assert 0.9 < fitted.midpoint < 2.1


def test_fit_rejects_bad_input():
    """One class, decreasing grades, mismatched or non-binary labels: clear ValueErrors."""
    with pytest.raises(ValueError, match="all 3 labels are 1"):
        fit_referable_calibration(np.array([1.0, 2.0, 3.0]), np.ones(3))
    with pytest.raises(ValueError, match="do not increase"):
        fit_referable_calibration(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 0, 0]))
    with pytest.raises(ValueError, match="differ in length"):
        fit_referable_calibration(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="0/1"):
        fit_referable_calibration(np.zeros(2), np.array([0, 2]))


def test_calibration_round_trips_and_validates():
    """to_dict/from_dict round-trip; a bad scale or missing key is refused."""
    calibration = Calibration(midpoint=1.2, scale=0.4)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert calibration.probability(1.2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scale"):
        Calibration(midpoint=1.0, scale=-1.0)
    with pytest.raises(ValueError, match="missing"):
        Calibration.from_dict({"midpoint": 1.0})


RUN_FILE = (Calibration(1.1, 0.6), "run/calibration.json")


@pytest.mark.parametrize(
    ("run", "overrides", "expected", "source"),
    [
        (None, {}, Calibration(), "default"),
        (RUN_FILE, {}, Calibration(1.1, 0.6), "run/calibration.json"),
        (
            RUN_FILE,
            {"scale": (0.5, "--calibration_scale")},
            Calibration(1.1, 0.5),
            "--calibration_scale, run/calibration.json",
        ),
        (
            RUN_FILE,
            {"midpoint": (2.0, "--calibration_midpoint"), "scale": (0.3, "--calibration_scale")},
            Calibration(2.0, 0.3),
            "--calibration_midpoint, --calibration_scale",
        ),
        (
            None,
            {"midpoint": (0.5, "--calibration_midpoint")},
            Calibration(0.5, 0.25),
            "--calibration_midpoint",
        ),
        (RUN_FILE, Calibration(1.0, 0.2).as_overrides("given"), Calibration(1.0, 0.2), "given"),
    ],
    ids=["default", "run_file", "one_flag_over_file", "both_flags", "flag_over_default", "given"],
)
def test_overrides_then_run_file_then_default(run, overrides, expected, source):
    """Each parameter: its override, else the run's calibration.json, else the default."""
    assert resolve_calibration(run, overrides) == (expected, source)


def test_unknown_override_and_invalid_result_are_refused():
    """Only midpoint and scale can be overridden, and the result must be a valid calibration."""
    with pytest.raises(ValueError, match="unknown calibration overrides"):
        resolve_calibration(None, {"slope": (1.0, "--slope")})
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        resolve_calibration(None, {"scale": (0.0, "--calibration_scale")})
