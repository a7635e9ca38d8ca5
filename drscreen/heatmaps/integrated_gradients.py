"""Integrated gradients (Sundararajan et al. 2017) from a black baseline.

attribution = (I − I₀) ⊙ ∫₀¹ ∂ŷ/∂I(I₀ + α(I − I₀)) dα with I₀ = 0 (black), the integral
approximated by the trapezoid rule on ``steps`` equal intervals. Several path points go
through the network in one batch. Completeness: the signed attributions sum to
ŷ(I) − ŷ(I₀) up to the quadrature error.
"""

import keras
import numpy as np
import tensorflow as tf

from drscreen.heatmaps import backprop
from drscreen.heatmaps.gradient_input import attribution_map


def trapezoid_weights(steps: int) -> np.ndarray:
    """Weights of the trapezoid rule on [0, 1] with ``steps`` intervals: (steps + 1,)."""
    if steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1, got {steps}")
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] *= 0.5
    return weights


def path_average_gradient(
    model: keras.Model,
    images: tf.Tensor,
    steps: int,
    points_per_batch: int,
    training: bool,
) -> tf.Tensor:
    """Trapezoid-rule average of ∂ŷ/∂I along the straight path from black to ``images``."""
    if points_per_batch < 1:
        raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
    alphas = np.linspace(0.0, 1.0, steps + 1)
    weights = trapezoid_weights(steps)
    images = tf.cast(images, tf.float32)
    total = tf.zeros_like(images)
    for start in range(0, steps + 1, points_per_batch):
        chunk = alphas[start : start + points_per_batch]
        batch = tf.concat([float(alpha) * images for alpha in chunk], axis=0)
        _, gradient = backprop.input_gradient(model, batch, training=training)
        gradient = tf.reshape(
            tf.cast(gradient, tf.float32), tf.concat([[len(chunk)], tf.shape(images)], axis=0)
        )
        chunk_weights = tf.constant(weights[start : start + points_per_batch], tf.float32)
        total += tf.tensordot(chunk_weights, gradient, axes=1)
    return total


def integrated_gradients(
    model: keras.Model,
    images: tf.Tensor,
    steps: int = 32,
    points_per_batch: int = 8,
    sign: str = "absolute",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and integrated-gradients heatmaps (N, H, W).

    Parameters
    ----------
    steps:
        Trapezoid intervals along the path (``steps + 1`` gradient evaluations).
    points_per_batch:
        Path points stacked into one network batch (memory vs. speed).
    sign:
        See `attribution_map`; ``"signed"`` keeps completeness.
    """
    grades = model(images, training=training)[:, 0]
    attribution = tf.cast(images, tf.float32) * path_average_gradient(
        model, images, steps, points_per_batch, training
    )
    return grades, attribution_map(attribution, sign)
