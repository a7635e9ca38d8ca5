"""SmoothGrad (Smilkov et al. 2017): the sensitivity heatmap averaged over noisy copies.

Each of ``samples`` copies of the image gets Gaussian noise of standard deviation
``sigma · 255`` drawn by a stateless RNG from ``seed`` (deterministic and exportable: no RNG
state in the graph). The heatmap is the mean of the copies' `channel_map`s, so σ = 0 gives
the sensitivity heatmap.
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop
from drscreen.heatmaps.sensitivity import channel_map

PIXEL_RANGE = 255.0


def noisy_copies(
    images: tf.Tensor, copies: int, sigma: float, seed: int, chunk: int = 0
) -> tf.Tensor:
    """``copies`` noisy versions of ``images`` stacked copy-major: (copies · N, H, W, C).

    The noise depends only on (``seed``, ``chunk``) and the shape, never on RNG state.
    """
    if sigma < 0:
        raise ValueError(f"SmoothGrad sigma must be >= 0, got {sigma}")
    images = tf.cast(images, tf.float32)
    shape = tf.concat([[copies], tf.shape(images)], axis=0)
    noise = tf.random.stateless_normal(shape, seed=[seed, chunk], stddev=sigma * PIXEL_RANGE)
    return tf.reshape(images[tf.newaxis] + noise, tf.concat([[-1], tf.shape(images)[1:]], 0))


def smoothgrad(
    model: keras.Model,
    images: tf.Tensor,
    samples: int = 16,
    sigma: float = 0.1,
    seed: int = 0,
    samples_per_batch: int = 8,
    reduction: str = "sum",
    form: str = "abs",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) of the clean images and SmoothGrad heatmaps (N, H, W).

    Parameters
    ----------
    samples:
        Noisy copies per image.
    sigma:
        Noise standard deviation as a fraction of the 0-255 pixel range.
    seed:
        Seed of the stateless noise.
    samples_per_batch:
        Noisy copies stacked into one network batch.
    reduction, form:
        See `channel_map`.
    """
    if samples < 1 or samples_per_batch < 1:
        raise ValueError(
            f"SmoothGrad needs samples >= 1 and samples_per_batch >= 1, "
            f"got {samples} and {samples_per_batch}"
        )
    grades = model(images, training=training)[:, 0]
    total = tf.zeros(tf.shape(images)[:3], tf.float32)
    for chunk, start in enumerate(range(0, samples, samples_per_batch)):
        copies = min(samples_per_batch, samples - start)
        batch = noisy_copies(images, copies, sigma, seed, chunk)
        _, gradient = backprop.input_gradient(model, batch, training=training)
        maps = channel_map(gradient, batch, reduction, form)
        total += tf.reduce_sum(
            tf.reshape(maps, tf.concat([[copies], tf.shape(images)[:3]], axis=0)), axis=0
        )
    return grades, total / samples
