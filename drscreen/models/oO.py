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
"""

import keras

from drscreen import layers
from drscreen.models.stack import (
    Conv,
    MaxPool,
    RMSPool,
    Step,
    build_body,
    input_normalization,
    maxout_head,
)

DEFAULT_WIDTH = 32
DEFAULT_INPUT_SIZE = 448
HEAD_UNITS = (1024, 1024)


def net_a_steps(width: int = DEFAULT_WIDTH) -> tuple[Step, ...]:
    """Net A's conv/pool stack for ``width`` n filters in the first stage."""
    n = width
    return (
        Conv(n, 5, 2),
        Conv(n),
        MaxPool(),
        Conv(2 * n, 5, 2),
        Conv(2 * n),
        Conv(2 * n),
        MaxPool(),
        Conv(4 * n),
        Conv(4 * n),
        Conv(4 * n),
        MaxPool(),
        Conv(8 * n),
        Conv(8 * n),
        Conv(8 * n),
        MaxPool(),
        Conv(16 * n),
        Conv(16 * n),
        RMSPool(3, 3),
    )


def net_b_steps(width: int = DEFAULT_WIDTH) -> tuple[Step, ...]:
    """Net B's conv/pool stack: 4x4 kernels throughout, a single 16n conv, RMS pool 3/2."""
    n = width
    return (
        Conv(n, 4, 2),
        Conv(n, 4),
        MaxPool(),
        Conv(2 * n, 4, 2),
        Conv(2 * n, 4),
        Conv(2 * n, 4),
        MaxPool(),
        Conv(4 * n, 4),
        Conv(4 * n, 4),
        Conv(4 * n, 4),
        MaxPool(),
        Conv(8 * n, 4),
        Conv(8 * n, 4),
        Conv(8 * n, 4),
        MaxPool(),
        Conv(16 * n, 4),
        RMSPool(3, 2),
    )


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
) -> keras.Sequential:
    """o_O net A: float32 RGB (N, S, S, 3) in [0, 255] -> grade regression (N, 1).

    Parameters
    ----------
    width:
        Filters of the first stage (n); stages use n, 2n, 4n, 8n, 16n.
    input_size:
        Side S of the square input (at least 245: the RMS pooling needs a 3x3 map).
    dropout_rate:
        Dropout before each hidden dense layer.
    kernel_regularizer:
        Applied to every convolution and dense kernel (o_O: L2 5e-4).
    normalization:
        In-model input normalisation, one of `stack.NORMALIZATIONS` (``"oO"``, ``"graham"``).
    """
    return _oO_net(
        "oO_netA",
        net_a_steps(width),
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
) -> keras.Sequential:
    """o_O net B: float32 RGB (N, S, S, 3) in [0, 255] -> grade regression (N, 1).

    Parameters are those of `net_a`.
    """
    return _oO_net(
        "oO_netB",
        net_b_steps(width),
        input_size,
        dropout_rate,
        kernel_regularizer,
        normalization,
    )
