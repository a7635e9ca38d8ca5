"""Deconvnet (Zeiler & Fergus 2014): the engine's ``DECONVNET`` rule.

ReLU-family activations pass relu(upstream) whatever the forward sign; linear layers and
max-pooling switches act as in the gradient. The channel reduction is `channel_map`'s.
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop
from drscreen.heatmaps.sensitivity import channel_map
from drscreen.layers.rules import DECONVNET


def deconvnet(
    model: keras.Model,
    images: tf.Tensor,
    reduction: str = "sum",
    form: str = "abs",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and deconvnet heatmaps (N, H, W)."""
    outputs, signal = backprop.input_gradient(model, images, rule=DECONVNET, training=training)
    return outputs[:, 0], channel_map(signal, images, reduction, form)
