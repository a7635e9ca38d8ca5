"""What a U-Net's skip decoder needs: `UpSampling2D` and the composite layer `SkipConcat`.

Owns the two layers that turn a chain into a U-Net without giving up the chain: a skip
connection is a layer holding the chain it skips (``concat([x, inner(x)])``), so a U-Net is
skips nested inside skips and the backward engine still walks one chain, each composite
walking its own inner chain (`drscreen.layers.chain.trace_forward`/`trace_backward`).
Both backward passes are reshapes, unit-stride slices, concatenations and additions: exact
(equal to `tf.GradientTape`), differentiable again, and run by TFLite built-ins inside
XNNPACK and by ONNX.
"""

from collections.abc import Sequence

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer
from drscreen.layers.chain import Trace, trace_backward, trace_forward
from drscreen.layers.rules import GRADIENT
from drscreen.layers.windows import spatial_dim


def _channel_slice(tensor: tf.Tensor, begin: int, size: int) -> tf.Tensor:
    """Channels ``[begin, begin + size)`` of a 4-D tensor (``size`` -1: to the end)."""
    return tf.slice(tensor, [0, 0, 0, begin], [-1, -1, -1, size])


def _sum_of_blocks(tensor: tf.Tensor, axis: int, parts: int) -> tf.Tensor:
    """The sum of the ``parts`` equal consecutive blocks of ``tensor`` along ``axis`` (4-D)."""
    length = tensor.shape[axis] // parts
    total = None
    for part in range(parts):
        begin, size = [0] * 4, [-1] * 4
        begin[axis], size[axis] = part * length, length
        block = tf.slice(tensor, begin, size)
        total = block if total is None else total + block
    return total


@keras.saving.register_keras_serializable(package="drscreen")
class UpSampling2D(BackpropLayer):
    """Nearest-neighbour upsampling by an integer ``size``: each pixel becomes a size x size block.

    Forward: ``size`` copies concatenated along the channels and reshaped into columns, then
    ``size`` copies of that along the width reshaped into rows (4-D concatenations and
    reshapes; channels-last memory puts copy ``k`` of column ``w`` at ``size·w + k``). Backward
    (every rule: each output copies exactly one input, so relevance and gradient alike sum
    back onto it): the same reshapes undone and the copies added, i.e. size x size sum
    pooling. Needs a static channel count and a static width (the zoo's inputs are square
    and static).

    Parameters
    ----------
    size:
        The upsampling factor, at least 2.
    """

    def __init__(self, size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        self.size = int(size)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[2] is None or input_shape[3] is None:
            raise ValueError(
                f"{self.name}: expects (batch, height, width, channels) inputs with a static "
                f"width and channel count, got {tuple(input_shape)}"
            )

    def call(self, inputs):
        s = self.size
        height, width, channels = (spatial_dim(inputs, axis) for axis in (1, 2, 3))
        columns = tf.reshape(tf.concat([inputs] * s, axis=-1), [-1, height, s * width, channels])
        rows = tf.concat([columns] * s, axis=2)
        return tf.reshape(rows, [-1, s * height, s * width, channels])

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        s = self.size
        height, width, channels = (spatial_dim(inputs, axis) for axis in (1, 2, 3))
        rows = tf.reshape(upstream, [-1, height, s * s * width, channels])
        columns = tf.reshape(_sum_of_blocks(rows, 2, s), [-1, height, width, s * channels])
        return _sum_of_blocks(columns, 3, s)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class SkipConcat(BackpropLayer):
    """A skip connection around a chain: ``concat([x, inner(x)], channels)``.

    ``inner`` is a chain of drscreen layers that maps a (N, H, W, C) input back to H x W (a
    U-Net level: pool, convolve, deeper levels, upsample); it may hold `SkipConcat` layers
    itself. Forward runs the inner chain keeping its `Trace`, which `forward` returns as this
    layer's ``saved``. Backward splits the upstream signal into the skip's first C channels and
    the inner chain's, propagates the latter back through the inner trace under the same rule,
    and adds the two (the fork's gradient; for LRP, the relevance of both paths). Backward
    needs that trace: the engine (`drscreen.heatmaps.backprop`) hands it back. Grad-CAM can
    stop at this layer, not at one inside it.

    Parameters
    ----------
    inner:
        The inner chain, input to output: drscreen `BackpropLayer`s.
    """

    def __init__(self, inner: Sequence[BackpropLayer], **kwargs):
        super().__init__(**kwargs)
        inner = list(inner)
        if not inner:
            raise ValueError(f"{self.name}: the inner chain is empty")
        for layer in inner:
            if not isinstance(layer, BackpropLayer):
                raise TypeError(
                    f"{self.name}: inner layer {getattr(layer, 'name', layer)!r} "
                    f"({type(layer).__name__}) is not a drscreen BackpropLayer, so it has no "
                    "exportable backward pass"
                )
        self.inner = inner

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expects (batch, height, width, channels) inputs")
        shape = tuple(input_shape)
        for layer in self.inner:
            if not layer.built:
                layer.build(shape)
            spec = keras.KerasTensor(shape, dtype=layer.compute_dtype)
            shape = tuple(layer.compute_output_spec(spec).shape)
        if len(shape) != 4 or shape[1:3] != tuple(input_shape[1:3]):
            raise ValueError(
                f"{self.name}: the inner chain maps {tuple(input_shape[1:])} to {shape[1:]}; a "
                "skip concatenation needs the same height and width"
            )

    def call(self, inputs, training=False):
        x = inputs
        for layer in self.inner:
            x = layer(x, training=training)
        return tf.concat([inputs, x], axis=-1)

    def forward(self, inputs, training=False) -> tuple[tf.Tensor, Trace]:
        if not self.built:
            self.build(inputs.shape)
        inputs = self.cast_input(inputs)
        inner_output, trace = trace_forward(self.inner, inputs, training)
        return tf.concat([inputs, inner_output], axis=-1), trace

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if not isinstance(saved, Trace):
            raise ValueError(
                f"{self.name}: backward needs the inner trace that forward returned (saved)"
            )
        channels = inputs.shape[-1]
        through_skip = _channel_slice(upstream, 0, channels)
        through_inner = _channel_slice(upstream, channels, -1)
        return through_skip + trace_backward(saved, through_inner, rule, training)

    def get_config(self):
        config = super().get_config()
        config["inner"] = [keras.saving.serialize_keras_object(layer) for layer in self.inner]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["inner"] = [keras.saving.deserialize_keras_object(c) for c in config["inner"]]
        return cls(**config)
