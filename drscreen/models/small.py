"""A small network of the o_O family that trains in minutes on a 2-core CPU.

Five stages of one 'same' convolution + leaky ReLU (widths n, 2n, 4n, 6n, 8n; the first
5x5 stride 2), separated by 3x3/2 max pooling, global average pooling, then one
dropout -> dense 2·(8n) -> leaky ReLU -> maxout pairs head and a linear grade unit. Biases
are tied (one per channel), so the parameter count does not grow with the input size:
about 225k parameters at n = 16. Works at any input size from 61 px; default 192 px.
"""

import keras

from drscreen import layers
from drscreen.models.stack import (
    Conv,
    MaxPool,
    Step,
    build_body,
    input_normalization,
    maxout_head,
)

DEFAULT_WIDTH = 16
DEFAULT_INPUT_SIZE = 192


def small_steps(width: int = DEFAULT_WIDTH) -> tuple[Step, ...]:
    """The small network's conv/pool stack for first-stage width ``width``."""
    n = width
    return (
        Conv(n, 5, 2),
        MaxPool(),
        Conv(2 * n),
        MaxPool(),
        Conv(4 * n),
        MaxPool(),
        Conv(6 * n),
        MaxPool(),
        Conv(8 * n),
    )


def small_net(
    width: int = DEFAULT_WIDTH,
    input_size: int = DEFAULT_INPUT_SIZE,
    dropout_rate: float = 0.5,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    normalization: str = "oO",
) -> keras.Sequential:
    """The small network: float32 RGB (N, S, S, 3) in [0, 255] -> grade regression (N, 1).

    Parameters
    ----------
    width:
        Filters of the first stage (n).
    input_size:
        Side S of the square input (at least 61).
    dropout_rate:
        Dropout before the hidden dense layer.
    kernel_regularizer:
        Applied to every convolution and dense kernel.
    normalization:
        In-model input normalisation, one of `stack.NORMALIZATIONS` (``"oO"``, ``"graham"``).
    """
    stack = [
        keras.Input((input_size, input_size, 3), name="images"),
        *input_normalization(normalization),
        *build_body(small_steps(width), input_size, "small", False, kernel_regularizer),
        layers.GlobalAveragePooling2D(name="global_pool"),
        *maxout_head((16 * width,), dropout_rate, kernel_regularizer),
    ]
    return keras.Sequential(stack, name="small")
