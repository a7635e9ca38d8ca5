"""Gradient × input (Shrikumar et al. 2016, "Not just a black box"), and the reduction of
per-channel attributions to a heatmap shared by the attribution methods (integrated
gradients, LRP).
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop

SIGNS = ("absolute", "positive", "signed")


def attribution_map(attribution: tf.Tensor, sign: str = "absolute") -> tf.Tensor:
    """Sum a per-channel attribution (N, H, W, C) over channels into a heatmap (N, H, W).

    Parameters
    ----------
    attribution:
        Signed contribution of every input value to the score.
    sign:
        ``"absolute"`` |Σ_c a|, ``"positive"`` max(Σ_c a, 0) (evidence for a higher grade)
        or ``"signed"`` Σ_c a (keeps completeness: the map sums to the attributed score).
    """
    if sign not in SIGNS:
        raise ValueError(f"sign {sign!r} is not one of {SIGNS}")
    summed = tf.reduce_sum(tf.cast(attribution, tf.float32), axis=-1)
    if sign == "absolute":
        return tf.abs(summed)
    if sign == "positive":
        return tf.nn.relu(summed)
    return summed


def gradient_input(
    model: keras.Model, images: tf.Tensor, sign: str = "absolute", training: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and gradient × input heatmaps (N, H, W): `attribution_map` of ∂ŷ/∂I ⊙ I.

    The product uses the raw [0, 255] image, i.e. a black reference image.
    """
    outputs, gradient = backprop.input_gradient(model, images, training=training)
    attribution = tf.cast(gradient, tf.float32) * tf.cast(images, tf.float32)
    return outputs[:, 0], attribution_map(attribution, sign)
