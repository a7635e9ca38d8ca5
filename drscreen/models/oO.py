"""The o_O networks of Kaggle DR 2015 (net A: 5x5 first convs, net B: 4x4 kernels).

Reproduces the public configurations ``c_512_5x5_32.py`` (net A) and ``c_512_4x4_32.py``
(net B) of team o_O (sveitser/kaggle_diabetic) as described in /work/shared/paper/README.md:
448 px input, 'same' convolutions each followed by a leaky ReLU (0.01), orthogonal weights,
biases 0.05, untied biases (one per output row, column and channel) on convolutions, 3x3/2
'valid' max pooling, a last RMS pooling (A: 3/3, B: 3/2), dropout 0.5 before each hidden
dense layer, dense 1024 -> maxout over pairs -> 512 twice, and a linear unit regressing the
grade. Net A's non-strided convolutions are 3x3 as in o_O's code.

Deviation: o_O alternated Lasagne's 'same' and ``pad=2`` on net B's 4x4 convolutions (the
latter grows the map by one pixel); we use TensorFlow's 'same' everywhere, so each
convolution keeps ``ceil(size / stride)``.

Layer output shapes at 448 px, width n = 32 (both nets; B has a single 16n conv):
conv1 224x224xn, conv2 224, pool1 111, conv3 56x56x2n, conv4-5 56, pool2 27, conv 4n 27,
pool3 13, conv 8n 13, pool4 6, conv 16n 6x6x16n, RMS pool 2x2x16n -> 2048 features.

Progressive resizing (o_O's ``c_128_*``, ``c_256_*``, ``c_512_*`` configurations): the nets are
built of five conv blocks (n, 2n, 4n, 8n, 16n filters) separated by max pooling, and o_O trained
the 112-px stage with the first 3 blocks and the 224-px stage with the first 4, each followed by
the same RMS pooling and head, then initialised each larger network from the smaller one's
layers. ``depth`` picks the number of blocks; by default it is the most the input size allows
(3 at 112 px, 4 at 224 px, all 5 from 245 px), which is o_O's choice at its three sizes. Layers
keep their names across depths (``conv1``...), so `drscreen.training.progressive` matches them.
"""

import keras

from drscreen import layers
from drscreen.models.stack import (
    Conv,
    MaxPool,
    RMSPool,
    Step,
    body_sizes,
    build_body,
    input_normalization,
    maxout_head,
)

DEFAULT_WIDTH = 32
DEFAULT_INPUT_SIZE = 448
HEAD_UNITS = (1024, 1024)


FULL_DEPTH = 5
MIN_DEPTH = 3
"""o_O's shallowest network (the 112-px stage) has the first 3 conv blocks."""


def _blocks(kernel: int, width: int) -> list[list[Step]]:
    """Net A (``kernel`` 5: 5x5 strided convs, 3x3 others) or net B (4: 4x4 throughout)."""
    n = width
    small = 3 if kernel == 5 else 4
    return [
        [Conv(n, kernel, 2), Conv(n, small)],
        [Conv(2 * n, kernel, 2), Conv(2 * n, small), Conv(2 * n, small)],
        [Conv(4 * n, small), Conv(4 * n, small), Conv(4 * n, small)],
        [Conv(8 * n, small), Conv(8 * n, small), Conv(8 * n, small)],
        [Conv(16 * n, small), Conv(16 * n, small)] if kernel == 5 else [Conv(16 * n, small)],
    ]


def _steps(blocks: list[list[Step]], depth: int, last_pool: RMSPool) -> tuple[Step, ...]:
    if not MIN_DEPTH <= depth <= FULL_DEPTH:
        raise ValueError(f"depth {depth} must be in [{MIN_DEPTH}, {FULL_DEPTH}] conv blocks")
    steps: list[Step] = []
    for index, block in enumerate(blocks[:depth]):
        if index:
            steps.append(MaxPool())
        steps += block
    return (*steps, last_pool)


def net_a_steps(width: int = DEFAULT_WIDTH, depth: int = FULL_DEPTH) -> tuple[Step, ...]:
    """Net A's conv/pool stack for ``width`` n filters in the first block, ``depth`` blocks."""
    return _steps(_blocks(5, width), depth, RMSPool(3, 3))


def net_b_steps(width: int = DEFAULT_WIDTH, depth: int = FULL_DEPTH) -> tuple[Step, ...]:
    """Net B's conv/pool stack: 4x4 kernels throughout, a single 16n conv, RMS pool 3/2."""
    return _steps(_blocks(4, width), depth, RMSPool(3, 2))


def fitting_depth(steps_of_depth, input_size: int) -> int:
    """The most conv blocks (at most `FULL_DEPTH`) whose poolings fit ``input_size``; the
    minimum depth when none does (`build_body` then names the smallest input)."""
    for depth in range(FULL_DEPTH, MIN_DEPTH - 1, -1):
        try:
            body_sizes(steps_of_depth(depth), input_size)
        except ValueError:
            continue
        return depth
    return MIN_DEPTH


def _oO_net(
    name: str,
    steps: tuple[Step, ...],
    input_size: int,
    dropout_rate: float,
    kernel_regularizer: keras.regularizers.Regularizer | None,
    normalization: str,
) -> keras.Sequential:
    stack = [
        keras.Input((input_size, input_size, 3), name="images"),
        *input_normalization(normalization),
        *build_body(steps, input_size, name, True, kernel_regularizer),
        layers.Flatten(name="flatten"),
        *maxout_head(HEAD_UNITS, dropout_rate, kernel_regularizer),
    ]
    return keras.Sequential(stack, name=name)


def net_a(
    width: int = DEFAULT_WIDTH,
    input_size: int = DEFAULT_INPUT_SIZE,
    dropout_rate: float = 0.5,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    normalization: str = "oO",
    depth: int | None = None,
) -> keras.Sequential:
    """o_O net A: float32 RGB (N, S, S, 3) in [0, 255] -> grade regression (N, 1).

    Parameters
    ----------
    width:
        Filters of the first block (n); blocks use n, 2n, 4n, 8n, 16n.
    input_size:
        Side S of the square input (at least 53 for 3 blocks, 117 for 4, 245 for all 5).
    dropout_rate:
        Dropout before each hidden dense layer.
    kernel_regularizer:
        Applied to every convolution and dense kernel (o_O: L2 5e-4).
    normalization:
        In-model input normalisation, one of `stack.NORMALIZATIONS` (``"oO"``, ``"graham"``).
    depth:
        Conv blocks, 3 to 5; None: the most ``input_size`` allows (o_O's progressive stages:
        3 at 112 px, 4 at 224 px, 5 at 448 px).
    """
    depth = depth or fitting_depth(lambda d: net_a_steps(width, d), input_size)
    return _oO_net(
        "oO_netA",
        net_a_steps(width, depth),
        input_size,
        dropout_rate,
        kernel_regularizer,
        normalization,
    )


def net_b(
    width: int = DEFAULT_WIDTH,
    input_size: int = DEFAULT_INPUT_SIZE,
    dropout_rate: float = 0.5,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    normalization: str = "oO",
    depth: int | None = None,
) -> keras.Sequential:
    """o_O net B: float32 RGB (N, S, S, 3) in [0, 255] -> grade regression (N, 1).

    Parameters are those of `net_a`.
    """
    depth = depth or fitting_depth(lambda d: net_b_steps(width, d), input_size)
    return _oO_net(
        "oO_netB",
        net_b_steps(width, depth),
        input_size,
        dropout_rate,
        kernel_regularizer,
        normalization,
    )
