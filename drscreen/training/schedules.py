"""Learning-rate schedules: o_O's step schedule (scaled to the run) and warm-up + cosine.

o_O (Kaggle DR 2015) trained ~250 epochs at 0.003, then 0.0003 from epoch 150 and 0.00003 from
epoch 220 (0-based epochs). A run of E epochs keeps those fractions: the rate drops at
round(150·E/250) and round(220·E/250). Steps are counted by the optimizer (0-based), so the
first step of epoch b (b·steps_per_epoch) already uses the lower rate. Keras 3's built-in
`keras.optimizers.schedules.PiecewiseConstantDecay` does the stepping.

``"cosine"`` (for short runs such as the quickstart): the rate rises linearly from 0 to the
base rate over the first epoch (`warmup_steps`), then follows a half cosine down to 0 at the
last step of the stage (`keras.optimizers.schedules.CosineDecay` with ``warmup_target``).
The warm-up lets a large base rate start safely from the orthogonal initialisation; the decay
spends the last epochs at small rates, as o_O's drops do over 250 epochs.
"""

import keras

OO_EPOCHS = 250
OO_DROP_EPOCHS = (150, 220)
OO_DECAY = 0.1


def oO_drop_epochs(epochs: int) -> tuple[int, int]:
    """Epochs (0-based) at which the o_O rate drops, scaled from 250 epochs to `epochs`.

    Each drop is at least one epoch after the previous one (and after epoch 0), so short
    runs still visit all three rates when they have three epochs or more.
    """
    first = max(1, round(OO_DROP_EPOCHS[0] * epochs / OO_EPOCHS))
    second = max(first + 1, round(OO_DROP_EPOCHS[1] * epochs / OO_EPOCHS))
    return first, second


def warmup_steps(epochs: int, steps_per_epoch: int) -> int:
    """Steps of the cosine schedule's linear warm-up: one epoch, at most half of the run."""
    return min(steps_per_epoch, epochs * steps_per_epoch // 2)


def learning_rate_schedule(
    name: str, base_rate: float, epochs: int, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate for schedule `name`: ``"oO"``, ``"cosine"`` or ``"constant"``."""
    if name == "constant":
        return base_rate
    if name == "cosine":
        warmup = warmup_steps(epochs, steps_per_epoch)
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            max(1, epochs * steps_per_epoch - warmup),
            warmup_target=base_rate,
            warmup_steps=warmup,
        )
    if name != "oO":
        raise ValueError(
            f"unknown learning-rate schedule {name!r}; expected 'oO', 'cosine' or 'constant'"
        )
    boundaries = [epoch * steps_per_epoch - 1 for epoch in oO_drop_epochs(epochs)]
    values = [base_rate, base_rate * OO_DECAY, base_rate * OO_DECAY**2]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
