"""Guided back-propagation (Springenberg et al. 2015): the engine's ``GUIDED`` rule.

The backward signal is the gradient, with negative values also zeroed at every ReLU-family
activation; its channel reduction is the sensitivity heatmap's (`channel_map`).
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop
from drscreen.heatmaps.sensitivity import channel_map
from drscreen.layers.rules import GUIDED


def guided_backprop(
    model: keras.Model,
    images: tf.Tensor,
    reduction: str = "sum",
    form: str = "abs",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and guided back-propagation heatmaps (N, H, W)."""
    outputs, signal = backprop.input_gradient(model, images, rule=GUIDED, training=training)
    return outputs[:, 0], channel_map(signal, images, reduction, form)
