"""Penalties on heatmaps for heatmap-aware training (pure functions of TensorFlow tensors).

Each penalty maps heatmaps ``H`` (N, H, W) and field-of-view masks ``M`` (N, H, W, 1 inside)
to a scalar, averaged over the batch, looking only at pixels inside the field of view:

- ``sparsity`` (default, Quellec et al. 2017: lesions cover few pixels): mean |H| over the
  FOV, ``Σ|H|·M / ΣM``. It penalises the total relevance, so the network keeps its
  sensitivity on few pixels.
- ``total_variation``: mean absolute difference between vertical and horizontal neighbours
  that are both inside the FOV, ``(Σ|ΔyH|·MyM + Σ|ΔxH|·MxM) / ΣM``; favours smooth blobs
  over speckle.
- ``entropy``: Shannon entropy of the relevance distribution ``p = |H|·M / Σ|H|·M``
  divided by ``log ΣM`` (1 for a uniform map, 0 for a single pixel); favours concentrated
  maps regardless of their overall scale.
"""

from collections.abc import Callable

import tensorflow as tf

Penalty = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
_EPSILON = 1e-12


def _fov_area(masks: tf.Tensor) -> tf.Tensor:
    return tf.maximum(tf.reduce_sum(masks, axis=[1, 2]), 1.0)


def sparsity(heatmaps: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """Mean |H| inside the field of view, averaged over images."""
    mass = tf.reduce_sum(tf.abs(heatmaps) * masks, axis=[1, 2])
    return tf.reduce_mean(mass / _fov_area(masks))


def total_variation(heatmaps: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """Mean absolute neighbour difference inside the field of view, averaged over images."""
    vertical = tf.abs(heatmaps[:, 1:, :] - heatmaps[:, :-1, :]) * masks[:, 1:, :] * masks[:, :-1, :]
    horizontal = (
        tf.abs(heatmaps[:, :, 1:] - heatmaps[:, :, :-1]) * masks[:, :, 1:] * masks[:, :, :-1]
    )
    variation = tf.reduce_sum(vertical, axis=[1, 2]) + tf.reduce_sum(horizontal, axis=[1, 2])
    return tf.reduce_mean(variation / _fov_area(masks))


def entropy(heatmaps: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """Normalised entropy of |H| inside the field of view, averaged over images."""
    relevance = tf.abs(heatmaps) * masks
    total = tf.reduce_sum(relevance, axis=[1, 2], keepdims=True)
    p = relevance / (total + _EPSILON)
    image_entropy = -tf.reduce_sum(p * tf.math.log(p + _EPSILON), axis=[1, 2])
    return tf.reduce_mean(image_entropy / tf.math.log(tf.maximum(_fov_area(masks), 2.0)))


PENALTIES: dict[str, Penalty] = {
    "sparsity": sparsity,
    "total_variation": total_variation,
    "entropy": entropy,
}


def get_penalty(name: str) -> Penalty:
    """The penalty called `name`; ValueError listing the names otherwise."""
    if name not in PENALTIES:
        raise ValueError(
            f"unknown heatmap penalty {name!r}; expected one of {', '.join(PENALTIES)}"
        )
    return PENALTIES[name]
