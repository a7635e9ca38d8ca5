"""Normalisation layers: fixed input z-scoring (o_O) and inference-time batch normalisation.

Owns the o_O input statistics `OO_MEAN` / `OO_STD` (the single source for the data
pre-processing too) and the two affine-per-channel layers with their backward rules.
"""

from collections.abc import Sequence

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer, lrp_ratio
from drscreen.layers.rules import GRADIENT, BackwardRule

OO_MEAN = (108.64628601, 75.86886597, 54.34005737)
"""Per-channel RGB mean of 0-255 fundus images used by team o_O (Kaggle DR 2015)."""
OO_STD = (70.53946096, 51.71475228, 43.03428563)
"""Per-channel RGB standard deviation of 0-255 fundus images used by team o_O."""


def _affine_backward(
    inputs: tf.Tensor,
    outputs: tf.Tensor,
    upstream: tf.Tensor,
    scale: tf.Tensor,
    rule: BackwardRule,
) -> tf.Tensor:
    """Backward of ``outputs = scale * inputs + shift`` (per channel) under ``rule``."""
    if rule.is_lrp:
        return inputs * scale * lrp_ratio(upstream, outputs, rule.epsilon)
    return upstream * scale


@keras.saving.register_keras_serializable(package="drscreen")
class InputNormalization(BackpropLayer):
    """Per-channel z-score ``(x - mean) / std`` with fixed statistics (no weights).

    Parameters
    ----------
    mean, std:
        One value per channel; default the o_O statistics of 0-255 RGB fundus images.
    """

    def __init__(self, mean: Sequence[float] = OO_MEAN, std: Sequence[float] = OO_STD, **kwargs):
        super().__init__(**kwargs)
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def build(self, input_shape):
        if input_shape[-1] != len(self.mean):
            raise ValueError(
                f"{self.name}: input has {input_shape[-1]} channels, "
                f"the normalisation statistics {len(self.mean)}"
            )

    def call(self, inputs):
        mean = tf.constant(self.mean, self.compute_dtype)
        return (inputs - mean) * self._scale()

    def _scale(self) -> tf.Tensor:
        return tf.constant([1.0 / s for s in self.std], self.compute_dtype)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        return _affine_backward(inputs, outputs, upstream, self._scale(), rule)

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std)})
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class BatchNormalization(BackpropLayer):
    """Batch normalisation over the last axis whose backward supports inference mode only.

    In training mode the forward pass normalises with the batch statistics and updates the
    moving averages as usual, but the backward pass through batch statistics is not provided:
    `backward` raises `NotImplementedError` there (drscreen's networks do not use batch
    normalisation during heatmap-aware training). At inference it is the per-channel affine
    map ``gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``.

    Parameters
    ----------
    momentum:
        Moving-average momentum.
    epsilon:
        Added to the variance.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(channels,), initializer="ones", trainable=False
        )

    def call(self, inputs, training=False):
        if training:
            axes = list(range(len(inputs.shape) - 1))
            mean, variance = tf.nn.moments(tf.cast(inputs, "float32"), axes)
            self.moving_mean.assign(self.momentum * self.moving_mean + (1 - self.momentum) * mean)
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1 - self.momentum) * variance
            )
            mean, variance = self.cast_input(mean), self.cast_input(variance)
        else:
            mean = self.cast_weight(self.moving_mean)
            variance = self.cast_weight(self.moving_variance)
        scale = self.cast_weight(self.gamma) * tf.math.rsqrt(variance + self.epsilon)
        return (inputs - mean) * scale + self.cast_weight(self.beta)

    def _inference_scale(self) -> tf.Tensor:
        variance = self.cast_weight(self.moving_variance)
        return self.cast_weight(self.gamma) * tf.math.rsqrt(variance + self.epsilon)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if training:
            raise NotImplementedError(
                f"{self.name}: backward through batch statistics (training mode) is not "
                "supported; run the backward pass with training=False"
            )
        inputs = self.cast_input(inputs)
        return _affine_backward(inputs, outputs, upstream, self._inference_scale(), rule)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config
