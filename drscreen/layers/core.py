"""Dense-head layers: `Flatten`, `Dense`, `Maxout` and `Dropout`, with their backward rules.

Owns the layers of o_O's head (dropout -> dense 1024 -> maxout pairs -> ... -> linear output).
"""

import math

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer, lrp_ratio, positive_step
from drscreen.layers.convolution import DEFAULT_BIAS
from drscreen.layers.rules import GRADIENT


def _require_rank(layer: keras.layers.Layer, input_shape, rank: int) -> None:
    if len(input_shape) != rank:
        raise ValueError(
            f"{layer.name}: expects rank-{rank} inputs, got shape {tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="drscreen")
class Flatten(BackpropLayer):
    """Collapse every axis but the batch: ``(N, ...) -> (N, prod(...))``."""

    def call(self, inputs):
        if inputs.shape[1:].is_fully_defined():
            return tf.reshape(inputs, [-1, math.prod(inputs.shape[1:])])
        return tf.reshape(inputs, [tf.shape(inputs)[0], -1])

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        return tf.reshape(upstream, tf.shape(inputs))


@keras.saving.register_keras_serializable(package="drscreen")
class Dense(BackpropLayer):
    """Fully connected layer ``x W + b`` on rank-2 inputs.

    Parameters
    ----------
    units:
        Number of outputs.
    kernel_initializer, bias_initializer, kernel_regularizer:
        Anything `keras.initializers.get` / `keras.regularizers.get` accept.
    """

    def __init__(
        self,
        units: int,
        kernel_initializer="orthogonal",
        bias_initializer=DEFAULT_BIAS,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        _require_rank(self, input_shape, 2)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        return tf.matmul(inputs, self.cast_weight(self.kernel)) + self.cast_weight(self.bias)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        kernel = self.cast_weight(self.kernel)
        if rule.is_lrp:
            ratio = lrp_ratio(upstream, outputs, rule.epsilon)
            return self.cast_input(inputs) * tf.matmul(ratio, kernel, transpose_b=True)
        return tf.matmul(upstream, kernel, transpose_b=True)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class Maxout(BackpropLayer):
    """Maximum over groups of ``pieces`` CONSECUTIVE units: ``(N, U) -> (N, U / pieces)``.

    Output ``k`` is the maximum of inputs ``k * pieces ... k * pieces + pieces - 1`` (o_O's
    Lasagne ``FeaturePoolLayer``: dense 1024 -> maxout pairs -> 512). The backward pass splits
    the signal equally between tied maxima, as the gradient of ``reduce_max`` does; LRP
    routes relevance to the winner the same way.

    Parameters
    ----------
    pieces:
        Group size (>= 1), dividing the number of input units.
    """

    def __init__(self, pieces: int = 2, **kwargs):
        super().__init__(**kwargs)
        if pieces < 1:
            raise ValueError(f"pieces must be >= 1, got {pieces}")
        self.pieces = int(pieces)

    def build(self, input_shape):
        _require_rank(self, input_shape, 2)
        if input_shape[-1] is None or input_shape[-1] % self.pieces:
            raise ValueError(
                f"{self.name}: {input_shape[-1]} input units are not a multiple of "
                f"pieces={self.pieces}"
            )

    def _groups(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.reshape(inputs, [-1, inputs.shape[-1] // self.pieces, self.pieces])

    def call(self, inputs):
        return tf.reduce_max(self._groups(inputs), axis=-1)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        groups = self._groups(self.cast_input(inputs))
        hits = 1 - positive_step(outputs[:, :, tf.newaxis] - groups)
        share = hits / tf.reduce_sum(hits, axis=-1, keepdims=True)
        return tf.reshape(share * upstream[:, :, tf.newaxis], tf.shape(inputs))

    def get_config(self):
        config = super().get_config()
        config["pieces"] = self.pieces
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class Dropout(BackpropLayer):
    """Inverted dropout: in training, zero each input with probability ``rate``, scale the rest.

    `forward` returns the scaled keep-mask it drew; the engine stores it in the trace and
    `backward` multiplies the upstream signal by that same mask, so training-mode backward
    passes are exact. At inference the layer is the identity.

    Parameters
    ----------
    rate:
        Drop probability in [0, 1).
    seed:
        Seed of the layer's random generator.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keep_mask(self, inputs: tf.Tensor) -> tf.Tensor:
        """A fresh mask: 0 (dropped) or ``1 / (1 - rate)`` (kept), shaped like ``inputs``."""
        uniform = keras.random.uniform(tf.shape(inputs), seed=self.seed_generator)
        keep = tf.cast(uniform >= self.rate, self.compute_dtype)
        return keep / tf.cast(1 - self.rate, self.compute_dtype)

    def call(self, inputs, training=False):
        return self.forward(inputs, training)[0]

    def forward(self, inputs, training=False):
        inputs = self.cast_input(inputs)
        if not training or self.rate == 0:
            return inputs, None
        mask = self._keep_mask(inputs)
        return inputs * mask, mask

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if not training or self.rate == 0:
            return upstream
        if saved is None:
            raise ValueError(
                f"{self.name}: a training-mode backward pass needs the mask drawn by forward()"
            )
        return upstream * saved

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
