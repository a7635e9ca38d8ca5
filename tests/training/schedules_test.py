"""Learning-rate schedules: o_O's against the published epochs and rates; warm-up + cosine."""

import math

import pytest

from drscreen.training import schedules


@pytest.mark.parametrize(
    ("epochs", "expected"), [(250, (150, 220)), (10, (6, 9)), (2, (1, 2)), (1, (1, 2))]
)
def test_drop_epochs_scale_150_and_220_of_250(epochs, expected):
    """Drops keep o_O's fractions of the run and stay strictly increasing."""
    assert schedules.oO_drop_epochs(epochs) == expected


def test_learning_rate_per_epoch_matches_oO():
    """0.003 until epoch 149, 0.0003 from 150, 0.00003 from 220 (250 epochs)."""
    schedule = schedules.learning_rate_schedule("oO", 0.003, 250, steps_per_epoch=1)
    rate = [float(schedule(epoch)) for epoch in (0, 149, 150, 219, 220)]
    assert rate == pytest.approx([0.003, 0.003, 0.0003, 0.0003, 0.00003])


def test_keras_schedule_drops_on_the_first_step_of_the_drop_epoch():
    """With 10 steps per epoch, step 1500 (first of epoch 150) already uses 0.0003."""
    schedule = schedules.learning_rate_schedule("oO", 0.003, 250, 10)
    rates = [float(schedule(step)) for step in (0, 1499, 1500, 2199, 2200, 10**6)]
    assert rates == pytest.approx([0.003, 0.003, 0.0003, 0.0003, 0.00003, 0.00003])


def test_cosine_warms_up_over_one_epoch_then_decays_to_zero():
    """4 epochs of 5 steps at 0.1: linear 0 -> 0.1 over steps 0-5, then 0.1·(1 + cos(π·t/15))/2."""
    schedule = schedules.learning_rate_schedule("cosine", 0.1, 4, 5)
    rates = [float(schedule(step)) for step in (0, 2, 5, 10, 20)]
    expected = [0.0, 0.04, 0.1, 0.1 * (1 + math.cos(math.pi * 5 / 15)) / 2, 0.0]
    assert rates == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(("epochs", "steps", "expected"), [(4, 5, 5), (1, 6, 3), (1, 1, 0)])
def test_warmup_is_one_epoch_and_at_most_half_the_run(epochs, steps, expected):
    assert schedules.warmup_steps(epochs, steps) == expected


def test_cosine_schedule_of_a_one_step_run_is_finite():
    """No warm-up and one decay step: the base rate at step 0."""
    schedule = schedules.learning_rate_schedule("cosine", 0.1, 1, 1)
    assert float(schedule(0)) == pytest.approx(0.1)


def test_constant_and_unknown_schedule():
    """`constant` is the base rate; an unknown name is a clear error."""
    assert schedules.learning_rate_schedule("constant", 0.01, 5, 3) == 0.01
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        schedules.learning_rate_schedule("linear", 0.01, 5, 3)
