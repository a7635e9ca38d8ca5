"""Tests for ICDR grading of lesion plans and correlated grades of patient pairs."""

import numpy as np
import pytest

from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.grading import (
    SEVERE_HEMORRHAGES_PER_QUADRANT,
    LesionPlan,
    icdr_grade,
    lesion_plan,
    patient_grades,
)


@pytest.mark.parametrize(
    ("plan", "grade"),
    [
        (LesionPlan(), 0),
        (LesionPlan(microaneurysms=3), 1),
        (LesionPlan(microaneurysms=3, hemorrhages=(1, 0, 0, 0)), 2),
        (LesionPlan(cotton_wool_spots=1), 2),
        (LesionPlan(hemorrhages=(SEVERE_HEMORRHAGES_PER_QUADRANT,) * 3 + (1,)), 2),
        (LesionPlan(hemorrhages=(SEVERE_HEMORRHAGES_PER_QUADRANT,) * 4), 3),
        (LesionPlan(exudate_clusters=1, venous_beading=True), 3),
        (LesionPlan(neovascularisation=1), 4),
        (LesionPlan(microaneurysms=2, preretinal_hemorrhage=True), 4),
    ],
)
def test_icdr_grade_of_hand_made_plans(plan, grade):
    """The ICDR rules applied to hand-written findings."""
    assert icdr_grade(plan) == grade


@pytest.mark.parametrize("lesion_count", [0.7, 1.0, 1.5])
def test_sampled_plans_have_the_requested_grade(lesion_count):
    """Every plan drawn for a grade is graded back to that grade."""
    rng = np.random.default_rng(0)
    for grade in range(5):
        for _ in range(200):
            plan = lesion_plan(grade, rng, lesion_count)
            assert icdr_grade(plan) == grade, plan
            if grade == 1:
                assert plan == LesionPlan(microaneurysms=plan.microaneurysms)


def test_patient_grades_follow_the_mix_and_correlate():
    """Each eye's grade frequencies match the mix; P(same grade) = r + (1 - r) * sum(p^2)."""
    config = SynthConfig(n=2, grade_mix=(0.4, 0.15, 0.25, 0.1, 0.1), pair_correlation=0.6)
    pairs = np.array([patient_grades(config, patient) for patient in range(6000)])
    mix = np.array(config.grade_mix)
    for eye in (0, 1):
        frequencies = np.bincount(pairs[:, eye], minlength=5) / len(pairs)
        np.testing.assert_allclose(frequencies, mix, atol=0.02)
    expected_same = 0.6 + 0.4 * float(np.sum(mix**2))
    assert np.mean(pairs[:, 0] == pairs[:, 1]) == pytest.approx(expected_same, abs=0.02)


def test_patient_grades_are_deterministic_per_seed():
    """The same (seed, patient) always gives the same pair; another seed differs."""
    first = [patient_grades(SynthConfig(seed=3), p) for p in range(50)]
    again = [patient_grades(SynthConfig(seed=3), p) for p in range(50)]
    other = [patient_grades(SynthConfig(seed=4), p) for p in range(50)]
    assert first == again
    assert first != other
