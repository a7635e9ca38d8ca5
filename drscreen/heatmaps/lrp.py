"""Layer-wise relevance propagation, epsilon rule (Bach et al. 2015): the engine's
``lrp_epsilon`` rule.

Relevance starts at the output as the predicted grade itself (R = ŷ), so the input relevance
approximately sums to ŷ (exactly, up to what biases and epsilon absorb). The per-channel
relevance is reduced by `attribution_map`.
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop
from drscreen.heatmaps.gradient_input import attribution_map
from drscreen.layers.rules import lrp_epsilon


def lrp(
    model: keras.Model,
    images: tf.Tensor,
    epsilon: float = 1e-6,
    sign: str = "absolute",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and LRP-ε heatmaps (N, H, W).

    Parameters
    ----------
    epsilon:
        Stabiliser of the epsilon rule (> 0); larger values absorb weak, noisy relevance.
    sign:
        See `attribution_map`.
    """
    outputs, trace = backprop.forward(model, images, training=training)
    relevance = backprop.backward(trace, outputs, rule=lrp_epsilon(epsilon), training=training)
    return outputs[:, 0], attribution_map(relevance, sign)
