"""The local-evidence network: a small-receptive-field lesion detector whose pooled evidence
is the grade.

A short conv stack (receptive field 29 px, output stride 4) maps every 4 x 4 block of the
photograph to one evidence value ``e`` (a 1 x 1 convolution). The grade is
``k · mean(relu(e)²)`` over all positions (`layers.SquaredReLU`, global average pooling, a
bias-free `layers.Dense`), so

- a photograph without evidence grades 0 (no bias absorbs background evidence): training
  pushes the evidence of healthy tissue below zero, where it has no gradient at all;
- the grade's gradient with respect to a position is ``2k · relu(e) / N``: each position's
  share of the sensitivity heatmap is weighted by its own evidence, so heatmap values compare
  across photographs (the FROC threshold is one level for all of them) and a lesion's share
  grows with how much it raised the grade;
- the receptive field is a few lesion diameters, so the heatmap cannot wander far from the
  evidence that produced it (BagNet-style local evidence; Brendel & Bethge 2019, and the sparse
  BagNet for DR of Donteu Djoumessi et al. 2023).

Every layer is a drscreen layer, so the sensitivity heatmap is exact, exportable and
differentiable again; Grad-CAM on this network is the upsampled evidence map itself
(``relu(e)²`` is its last feature map, with one channel). Biases are tied, so the parameter
count does not depend on the input size: about 70k at width 16.
"""

import keras
import tensorflow as tf

from drscreen import layers
from drscreen.models.stack import Conv, MaxPool, Step, build_body, input_normalization

DEFAULT_WIDTH = 16
DEFAULT_INPUT_SIZE = 192
EVIDENCE_LAYER = "evidence"
"""The 1 x 1 evidence convolution (its output ``e``, one value per position)."""
EVIDENCE_MAP_LAYER = "evidence_act"
"""``relu(e)²``: the evidence map, whose mean times the grade weight is the grade."""
GRADE_LAYER = "grade"
EVIDENCE_BIAS = 0.5
"""Initial bias of the evidence convolution: every position starts with evidence, so every
position starts with a gradient (a negative start would leave ``relu(e)²`` dead)."""


def evidence_head(
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
) -> list[keras.layers.Layer]:
    """The evidence head: a 1 x 1 convolution to one evidence value ``e`` per position
    (``evidence``, bias `EVIDENCE_BIAS`), ``relu(e)²`` (``evidence_act``, the evidence map),
    its global average (``global_pool``) and a bias-free dense unit ``k`` (``grade``)."""
    return [
        layers.Conv2D(
            1,
            1,
            bias_initializer=keras.initializers.Constant(EVIDENCE_BIAS),
            kernel_regularizer=kernel_regularizer,
            name=EVIDENCE_LAYER,
        ),
        layers.SquaredReLU(name=EVIDENCE_MAP_LAYER),
        layers.GlobalAveragePooling2D(name="global_pool"),
        layers.Dense(
            1,
            use_bias=False,
            kernel_initializer="ones",
            kernel_regularizer=kernel_regularizer,
            name=GRADE_LAYER,
        ),
    ]


def evidence_sparsity(evidence: tf.Tensor, grade_kernel: tf.Tensor) -> tf.Tensor:
    """The L1 norm of the evidence amplitudes ``sqrt(|k|) · relu(e)``, averaged over positions
    and images: the sparsity term of training (``--evidence_l1``; after Donteu Djoumessi et al.).

    A position's share of the grade is ``c = k · relu(e)² / N`` and this is the mean of
    ``sqrt(N c)``: at a fixed grade it is largest for evidence spread evenly (``sqrt(grade)``)
    and shrinks as the square root of the share of positions holding it, so penalising it
    concentrates the evidence. Neither simpler choice works: an L1 on the map ``relu(e)²``
    itself is its mean, the grade divided by ``k`` (no sparsity at all, only a push to grow
    ``k``), and an L1 on ``relu(e)`` alone is escaped by growing ``k`` while shrinking ``e``;
    this one is unchanged by that exchange.

    Parameters
    ----------
    evidence:
        The evidence layer's output ``e`` (N, H, W, 1), before the squared ReLU.
    grade_kernel:
        The grade unit's weight ``k`` (1, 1).
    """
    scale = tf.sqrt(tf.abs(tf.cast(tf.reshape(grade_kernel, []), tf.float32)))
    return scale * tf.reduce_mean(tf.nn.relu(tf.cast(evidence, tf.float32)))


def evidence_steps(width: int = DEFAULT_WIDTH) -> tuple[Step, ...]:
    """The conv/pool stack for first-stage width ``width`` (receptive field 29 px, stride 4)."""
    n = width
    return (
        Conv(n, 5, 2),
        Conv(2 * n),
        MaxPool(),
        Conv(4 * n),
        Conv(4 * n),
        Conv(4 * n, 1),
        Conv(4 * n, 1),
    )


def evidence_net(
    width: int = DEFAULT_WIDTH,
    input_size: int = DEFAULT_INPUT_SIZE,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    normalization: str = "oO",
) -> keras.Sequential:
    """The local-evidence network: float32 RGB (N, S, S, 3) in [0, 255] -> grade (N, 1).

    Parameters
    ----------
    width:
        Filters of the first stage (n); later stages have 2n and 4n.
    input_size:
        Side S of the square input (at least 13).
    kernel_regularizer:
        Applied to every convolution and dense kernel.
    normalization:
        In-model input normalisation, one of `stack.NORMALIZATIONS`.
    """
    stack = [
        keras.Input((input_size, input_size, 3), name="images"),
        *input_normalization(normalization),
        *build_body(evidence_steps(width), input_size, "evidence", False, kernel_regularizer),
        *evidence_head(kernel_regularizer),
    ]
    return keras.Sequential(stack, name="evidence")
