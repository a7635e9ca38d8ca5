"""2-D convolution with tied or untied (per-position) biases, and its backward rules.

Owns `Conv2D`. Its backward is a transposed convolution with the layer's own kernel, which
is exactly TensorFlow's input gradient (any stride, 'same' or 'valid'), exports as a
built-in op (TFLite TRANSPOSE_CONV, ONNX ConvTranspose) and is differentiable again.
"""

import keras
import tensorflow as tf

from drscreen.layers.base import PADDINGS, BackpropLayer, as_pair, lrp_ratio
from drscreen.layers.rules import GRADIENT

DEFAULT_BIAS = keras.initializers.Constant(0.05)
"""o_O's bias initialiser: every bias starts at 0.05."""


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution along one axis (TensorFlow's convention)."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


@keras.saving.register_keras_serializable(package="drscreen")
class Conv2D(BackpropLayer):
    """2-D convolution ``conv(x, W) + b`` with a bias tied per channel or untied.

    An untied bias (o_O) has one value per output row, column and channel, so the layer
    needs a static input height and width.

    Parameters
    ----------
    filters:
        Number of output channels.
    kernel_size, strides:
        Int or pair.
    padding:
        ``"same"`` or ``"valid"``.
    untied_bias:
        One bias per output position and channel instead of per channel.
    kernel_initializer, bias_initializer, kernel_regularizer:
        Anything `keras.initializers.get` / `keras.regularizers.get` accept.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "same",
        untied_bias: bool = False,
        kernel_initializer="orthogonal",
        bias_initializer=DEFAULT_BIAS,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.padding = padding
        self.untied_bias = bool(untied_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expects (batch, height, width, channels) inputs")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.untied_bias:
            if input_shape[1] is None or input_shape[2] is None:
                raise ValueError(
                    f"{self.name}: an untied bias needs a static input height and width, "
                    f"got input shape {tuple(input_shape)}"
                )
            bias_shape = tuple(
                conv_output_size(
                    input_shape[axis], self.kernel_size[i], self.strides[i], self.padding
                )
                for i, axis in enumerate((1, 2))
            ) + (self.filters,)
        else:
            bias_shape = (self.filters,)
        self.bias = self.add_weight(
            name="bias", shape=bias_shape, initializer=self.bias_initializer
        )

    def call(self, inputs):
        convolved = tf.nn.conv2d(
            inputs, self.cast_weight(self.kernel), self.strides, self.padding.upper()
        )
        return convolved + self.cast_weight(self.bias)

    def _transpose(self, upstream: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d_transpose(
            upstream,
            self.cast_weight(self.kernel),
            tf.shape(inputs),
            self.strides,
            self.padding.upper(),
        )

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        if rule.is_lrp:
            return inputs * self._transpose(lrp_ratio(upstream, outputs, rule.epsilon), inputs)
        return self._transpose(upstream, inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "padding": self.padding,
                "untied_bias": self.untied_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
