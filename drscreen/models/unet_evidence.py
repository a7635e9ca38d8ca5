"""The full-resolution evidence network: a small U-Net whose evidence map is at the input
resolution and whose mean is the grade.

GP-Unet (Dubost et al., MICCAI 2017) pools a U-Net's full-resolution output map into the
image-level label; the sparse BagNet for DR (Donteu Djoumessi et al., 2023) reads the class
evidence off a 1 x 1 convolution and sparsifies it with an L1 term. Here the encoder of the
local-evidence net (`evidence`: a 5 x 5 stride-2 convolution, 3 x 3 convolutions, leaky ReLUs,
3 x 3 stride-2 max pooling) is followed by a decoder that upsamples (nearest, x2) and
concatenates the encoder's map of the same scale (`layers.SkipConcat`), twice, the last time
with the normalised photograph itself, and one 3 x 3 convolution at full resolution; then the
evidence head of `evidence` (`evidence.evidence_head`): ``e`` per pixel, the map
``relu(e)²`` (``evidence_act``, 192 x 192 at 192 px), its mean times a bias-free weight ``k``
is the grade. Layout at width n (S = input side)::

    normalization                                        S    3
    skip1 [ conv1 5x5/2 n, conv2 3x3 2n                  S/2
            skip2 [ pool1 3x3/2 same, conv3, conv4 4n,   S/4
                    up1 ]                                S/2  2n + 4n
            conv5 3x3 n, up2 ]                           S    3 + n
    conv6 3x3 n                                          S    n
    evidence 1x1, evidence_act, global_pool, grade

The map is a forward output, so it is exact, exports as it is (Grad-CAM on ``evidence_act``,
the default Grad-CAM layer, is ``k / S²`` times it) and is differentiable; the sensitivity
heatmap and every rule go through the skips exactly. One evidence value depends on a window
of 33 to 37 pixels a side, by its position's phase (the local-evidence net: 29), so the map
stays near the evidence that made it. Biases are tied: 77,890 parameters at width 16, at any
input side (a multiple of 4). Training may add an L1 term on the evidence amplitudes
(``--evidence_l1``, `evidence.evidence_sparsity`): a term of the training loss, not part of
the model.
"""

import keras

from drscreen import layers
from drscreen.models.evidence import evidence_head
from drscreen.models.stack import LEAKY_SLOPE, input_normalization

DEFAULT_WIDTH = 16
DEFAULT_INPUT_SIZE = 192
SIDE_MULTIPLE = 4
"""The input side must be a multiple of this: the stride-2 stem and pooling are undone by two
x2 upsamplings."""


def unet_evidence_net(
    width: int = DEFAULT_WIDTH,
    input_size: int = DEFAULT_INPUT_SIZE,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    normalization: str = "oO",
) -> keras.Sequential:
    """The full-resolution evidence network: float32 RGB (N, S, S, 3) in [0, 255] -> grade (N, 1).

    Parameters
    ----------
    width:
        Filters n of the full- and half-resolution convolutions; the quarter resolution has 4n,
        the second half-resolution convolution 2n.
    input_size:
        Side S of the square input, a positive multiple of 4.
    kernel_regularizer:
        Applied to every convolution and dense kernel.
    normalization:
        In-model input normalisation, one of `stack.NORMALIZATIONS`.

    Raises
    ------
    ValueError
        For an input side that is not a positive multiple of 4, or a width below 1.
    """
    if input_size < SIDE_MULTIPLE or input_size % SIDE_MULTIPLE:
        raise ValueError(
            f"unet_evidence: input_size {input_size} must be a positive multiple of "
            f"{SIDE_MULTIPLE} (the decoder's upsamplings undo the stride-2 stem and pooling)"
        )
    if width < 1:
        raise ValueError(f"unet_evidence: width must be at least 1, got {width}")

    def conv(filters: int, kernel: int, name: str, strides: int = 1) -> list[layers.BackpropLayer]:
        return [
            layers.Conv2D(
                filters,
                kernel,
                strides=strides,
                kernel_regularizer=kernel_regularizer,
                name=name,
            ),
            layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act"),
        ]

    n = width
    quarter = layers.SkipConcat(
        [
            layers.MaxPooling2D(3, 2, padding="same", name="pool1"),
            *conv(4 * n, 3, "conv3"),
            *conv(4 * n, 3, "conv4"),
            layers.UpSampling2D(name="up1"),
        ],
        name="skip2",
    )
    half = layers.SkipConcat(
        [
            *conv(n, 5, "conv1", strides=2),
            *conv(2 * n, 3, "conv2"),
            quarter,
            *conv(n, 3, "conv5"),
            layers.UpSampling2D(name="up2"),
        ],
        name="skip1",
    )
    stack = [
        keras.Input((input_size, input_size, 3), name="images"),
        *input_normalization(normalization),
        half,
        *conv(n, 3, "conv6"),
        *evidence_head(kernel_regularizer),
    ]
    return keras.Sequential(stack, name="unet_evidence")
