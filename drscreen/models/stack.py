"""Building blocks shared by the zoo: conv/pool stacks described as data, and the dense head.

A network body is a tuple of `Conv`, `MaxPool` and `RMSPool` steps. `build_body` turns it
into drscreen layers while tracking the spatial size, so that an input too small for a
pooling window is reported by name instead of failing deep inside Keras. `input_normalization`
gives the in-model normalisation every network starts with.
"""

import dataclasses
import math

import keras

from drscreen import layers
from drscreen.layers.normalization import GRAHAM_GREY

LEAKY_SLOPE = 0.01

NORMALIZATIONS = ("oO", "graham")
"""In-model input normalisations: o_O's per-channel z-score, or Graham's local-average
subtraction followed by a fixed z-score (`input_normalization`)."""
GRAHAM_STD = 64.0
"""Divisor after Graham's subtraction: maps its displayable range 128 ± 128 to ±2, the span
the o_O z-score gives 0-255 pixels (about -1.5 to 2.1), so the first convolution sees inputs
of the same scale under both normalisations. A fixed scale, not a measured statistic."""


@dataclasses.dataclass(frozen=True)
class Conv:
    """A 'same' convolution followed by a leaky ReLU."""

    filters: int
    kernel_size: int = 3
    strides: int = 1


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """Overlapping max pooling ('valid')."""

    pool_size: int = 3
    strides: int = 2


@dataclasses.dataclass(frozen=True)
class RMSPool:
    """RMS pooling ('valid'), o_O's last pooling."""

    pool_size: int = 3
    strides: int = 3


Step = Conv | MaxPool | RMSPool


def output_size(size: int, step: Step) -> int:
    """Spatial size after ``step`` for a square input of side ``size``.

    'same' convolutions give ``ceil(size / stride)``; 'valid' pooling gives
    ``(size - pool) // stride + 1`` and needs ``size >= pool``.
    """
    if isinstance(step, Conv):
        return math.ceil(size / step.strides)
    if size < step.pool_size:
        raise ValueError(
            f"a {step.pool_size}x{step.pool_size} pooling needs an input of at least "
            f"{step.pool_size}x{step.pool_size}, got {size}x{size}"
        )
    return (size - step.pool_size) // step.strides + 1


def body_sizes(steps: tuple[Step, ...], input_size: int) -> tuple[int, ...]:
    """Spatial size after each step (raises `ValueError` when a pooling has no room)."""
    sizes = []
    size = input_size
    for step in steps:
        size = output_size(size, step)
        sizes.append(size)
    return tuple(sizes)


def min_input_size(steps: tuple[Step, ...]) -> int:
    """Smallest square input side for which every pooling of ``steps`` has room."""
    size = 1
    while True:
        try:
            body_sizes(steps, size)
        except ValueError:
            size += 1
            continue
        return size


def input_normalization(normalization: str) -> list[keras.layers.Layer]:
    """The layers mapping float32 RGB in [0, 255] to the network's normalised input.

    ``"oO"``: `layers.InputNormalization` with the o_O statistics (named ``normalization``).
    ``"graham"``: `layers.GrahamNormalization` (``graham``, sigma = FOV radius / 30) then
    ``(y - 128) / GRAHAM_STD`` per channel (``normalization``).

    Raises
    ------
    ValueError
        For a name not in `NORMALIZATIONS`.
    """
    if normalization == "oO":
        return [layers.InputNormalization(name="normalization")]
    if normalization == "graham":
        return [
            layers.GrahamNormalization(name="graham"),
            layers.InputNormalization((GRAHAM_GREY,) * 3, (GRAHAM_STD,) * 3, name="normalization"),
        ]
    raise ValueError(f"unknown normalization {normalization!r}; known: {', '.join(NORMALIZATIONS)}")


def build_body(
    steps: tuple[Step, ...],
    input_size: int,
    model_name: str,
    untied_bias: bool,
    kernel_regularizer: keras.regularizers.Regularizer | None,
) -> list[keras.layers.Layer]:
    """The layers of a conv/pool stack, named ``conv<i>``, ``conv<i>_act``, ``pool<i>``.

    Raises
    ------
    ValueError
        When ``input_size`` is too small for the stack, naming the model and the minimum.
    """
    try:
        body_sizes(steps, input_size)
    except ValueError as error:
        raise ValueError(
            f"{model_name}: input_size {input_size} is too small ({error}); "
            f"the minimum is {min_input_size(steps)}"
        ) from None
    stack: list[keras.layers.Layer] = []
    conv_index = pool_index = 0
    for step in steps:
        if isinstance(step, Conv):
            conv_index += 1
            stack.append(
                layers.Conv2D(
                    step.filters,
                    step.kernel_size,
                    strides=step.strides,
                    padding="same",
                    untied_bias=untied_bias,
                    kernel_regularizer=kernel_regularizer,
                    name=f"conv{conv_index}",
                )
            )
            stack.append(layers.LeakyReLU(LEAKY_SLOPE, name=f"conv{conv_index}_act"))
        else:
            pool_index += 1
            pool_class = layers.MaxPooling2D if isinstance(step, MaxPool) else layers.RMSPooling2D
            stack.append(pool_class(step.pool_size, strides=step.strides, name=f"pool{pool_index}"))
    return stack


def maxout_head(
    units: tuple[int, ...],
    dropout_rate: float,
    kernel_regularizer: keras.regularizers.Regularizer | None,
) -> list[keras.layers.Layer]:
    """o_O's head: for each width, dropout -> dense -> leaky ReLU -> maxout over pairs; then
    a linear dense unit regressing the grade (named ``grade``)."""
    head: list[keras.layers.Layer] = []
    for index, width in enumerate(units, start=1):
        head += [
            layers.Dropout(dropout_rate, name=f"dropout{index}"),
            layers.Dense(width, kernel_regularizer=kernel_regularizer, name=f"dense{index}"),
            layers.LeakyReLU(LEAKY_SLOPE, name=f"dense{index}_act"),
            layers.Maxout(2, name=f"maxout{index}"),
        ]
    head.append(layers.Dense(1, kernel_regularizer=kernel_regularizer, name="grade"))
    return head
