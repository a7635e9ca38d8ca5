"""Normalisation layers: fixed input z-scoring (o_O), Graham's local-average subtraction and
inference-time batch normalisation.

Owns the o_O input statistics `OO_MEAN` / `OO_STD` (the single source for the data
pre-processing too), the two affine-per-channel layers and the fixed-blur Graham layer, with
their backward rules.
"""

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from drscreen.layers.base import BackpropLayer, lrp_ratio
from drscreen.layers.rules import GRADIENT, BackwardRule

OO_MEAN = (108.64628601, 75.86886597, 54.34005737)
"""Per-channel RGB mean of 0-255 fundus images used by team o_O (Kaggle DR 2015)."""
OO_STD = (70.53946096, 51.71475228, 43.03428563)
"""Per-channel RGB standard deviation of 0-255 fundus images used by team o_O."""


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma``, truncated at 3 sigma."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).astype(np.float32)


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


GRAHAM_GAIN = 4.0
"""Graham's contrast gain: ``y = GAIN * (x - blur(x)) + GRAHAM_GREY``."""
GRAHAM_GREY = 128.0
"""Graham's neutral grey: the output where the image equals its local average."""


@keras.saving.register_keras_serializable(package="drscreen")
class GrahamNormalization(BackpropLayer):
    """Ben Graham's local-average subtraction ``4 * x - 4 * G_sigma * x + 128`` in the model.

    The Kaggle DR 2015 winner subtracted a Gaussian blur of sigma = radius / 30 of the field
    of view (10 px at radius 300). The model input is the square around the field of view
    (`drscreen.data.fundus.crop_to_field_of_view`), whose half side is that radius, so here
    ``sigma = sigma_fraction * side / 2``: the default 1/30 is Graham's choice, and the layer
    equals his recipe (OpenCV's ``GaussianBlur``) away from the borders. The kernel
    (`gaussian_kernel`, radius ``ceil(3 sigma)``) is built in `build` from the static input
    size, so it scales with progressive resizing; it is a constant, not a weight.

    Differences from Graham's recipe, on purpose: no clipping to [0, 255] (a
    clip would zero the gradient of saturated pixels), and the blur is a 'SAME' stride-1
    separable depthwise convolution, i.e. zero padding rather than reflection (the padding
    continues the black surround of the field of view, and keeps the blur self-adjoint). Both
    differ only within ``ceil(3 sigma)`` pixels of the image border.

    Backward: the layer is linear, ``y = 4 (I - B) x + 128``, and the blur ``B`` (a symmetric
    odd-size kernel, 'SAME', stride 1) is its own adjoint, so the gradient is
    ``4 * g - 4 * B g``: for every rule but LRP (guided back-propagation and deconvnet only
    differ at rectifiers). LRP passes relevance through unchanged (pixel i receives output
    pixel i's relevance): this fixed pre-processing is not part of the learned decision, and
    LRP-epsilon over it would split each pixel's relevance into large positive and negative
    shares of its neighbours and of the constant 128, which has no meaning in a pixel heatmap.

    Parameters
    ----------
    sigma_fraction:
        Blur sigma as a fraction of half the input side (the field-of-view radius).
    """

    def __init__(self, sigma_fraction: float = 1.0 / 30.0, **kwargs):
        super().__init__(**kwargs)
        if not sigma_fraction > 0:
            raise ValueError(f"sigma_fraction must be positive, got {sigma_fraction}")
        self.sigma_fraction = float(sigma_fraction)
        self.kernel_1d: np.ndarray | None = None

    def build(self, input_shape):
        if len(input_shape) != 4 or None in tuple(input_shape[1:3]):
            raise ValueError(
                f"{self.name}: needs (N, H, W, C) inputs of static size to build its blur, "
                f"got {tuple(input_shape)}"
            )
        side = min(input_shape[1], input_shape[2])
        self.kernel_1d = gaussian_kernel(self.sigma_fraction * side / 2.0)

    def blur(self, images: tf.Tensor) -> tf.Tensor:
        """The separable Gaussian blur ('SAME', zero padding) of (N, H, W, C) ``images``."""
        channels = images.shape[-1]
        kernel = tf.constant(self.kernel_1d, self.compute_dtype)
        kernel = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, channels, 1))
        strides = [1, 1, 1, 1]
        rows = tf.nn.depthwise_conv2d(images, kernel, strides, "SAME")
        return tf.nn.depthwise_conv2d(rows, tf.transpose(kernel, (1, 0, 2, 3)), strides, "SAME")

    def call(self, inputs):
        return GRAHAM_GAIN * (inputs - self.blur(inputs)) + GRAHAM_GREY

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if rule.is_lrp:
            return upstream
        return GRAHAM_GAIN * (upstream - self.blur(upstream))

    def get_config(self):
        config = super().get_config()
        config.update({"sigma_fraction": self.sigma_fraction})
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
