"""2-D convolution with tied or untied (per-position) biases, and its backward rules.

Owns `Conv2D` and `conv_input_gradient`, its backward: TensorFlow's input gradient (any
stride, 'same' or 'valid') written as an ordinary stride-1 convolution of the upstream signal,
not a transposed convolution. With an unknown batch size a transposed convolution's output
shape is computed at run time, and LiteRT's XNNPACK delegate refuses a TRANSPOSE_CONV whose
output shape is not a constant, so it ran on TFLite's slow reference kernel (60 % of
net A's heatmap time). A convolution has no output-shape input.

For stride ``s`` the input positions split into ``s x s`` phases (sub-pixel convolution):
phase ``r`` of input position ``s * a + r - pad`` receives ``sum_j g[a - j] W[s * j + r]``, a
stride-1 convolution of ``g`` with the taps ``r, r + s, ...`` of the kernel reversed. One
convolution computes every phase at once (the phases stacked in its output channels, short
phases padded with zero taps), a reshape-transpose-reshape interleaves them, and a slice
removes the padding. The rearranged kernel is a function of the weights only: TFLite and
ONNX fold it into a constant, and autodiff differentiates through it (double
back-propagation).

In-process (outside `drscreen.layers.portable()`) the same adjoint is TensorFlow's fused
``Conv2DBackpropInput`` (``tf.nn.conv2d_transpose``): the pad, kernel rearrangement and phase
interleaving cost heatmap-aware training a tenth of its step, and ``Conv2DBackpropInput``
differentiates again into ``Conv2D`` and ``Conv2DBackpropFilter``. Except onto few channels
with a stride (the first convolution's adjoint, onto the RGB pixels: the heatmap itself),
where oneDNN's ``Conv2DBackpropInput`` takes twice the phase convolution's time (net A at
448 px, batch 8: 102 against 52 ms CPU, `bench/conv_adjoint.py`): there the adjoint is the
phase convolution, given ``Conv2D`` and ``Conv2DBackpropFilter`` as its gradient (what
TensorFlow differentiates the fused adjoint into, cheaper than differentiating the phases).
All three are tested equal.
"""

import keras
import tensorflow as tf

from drscreen.layers.base import PADDINGS, BackpropLayer, as_pair, lrp_ratio
from drscreen.layers.portability import is_portable
from drscreen.layers.rules import GRADIENT
from drscreen.layers.windows import Dim, nonnegative, spatial_dim

DEFAULT_BIAS = keras.initializers.Constant(0.05)
"""o_O's bias initialiser: every bias starts at 0.05."""


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution along one axis (TensorFlow's convention)."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _axis_plan(size: Dim, out: Dim, kernel: int, stride: int, padding: str) -> tuple:
    """Per spatial axis: (taps per phase, pad before, pad after, crop offset) of the adjoint.

    The forward convolution reads input ``s * o + t - pad`` at output ``o`` and tap ``t``.
    Writing ``i + pad = s * a + r``, input ``i`` gets ``sum_j g[a - j] W[s j + r]`` for blocks
    ``a`` from ``pad // s`` to ``(size + pad - 1) // s``; ``g`` is padded so that a 'VALID'
    convolution with ``taps`` taps yields exactly those blocks.
    """
    taps = -(-kernel // stride)
    pad = nonnegative((out - 1) * stride + kernel - size) // 2 if padding == "same" else 0
    first_block, last_block = pad // stride, (size + pad - 1) // stride
    return taps, taps - 1 - first_block, last_block - (out - 1), pad % stride


def phase_kernel(kernel: tf.Tensor, strides: tuple[int, int]) -> tf.Tensor:
    """The stride-1 kernel computing every phase of a convolution's input gradient.

    ``kernel`` is (kh, kw, C_in, C_out); the result is (Jh, Jw, C_out, sh * sw * C_in) with
    ``J = ceil(k / s)``: output channel ``(rh * sw + rw) * C_in + c`` of tap ``(m, n)`` is
    ``kernel[sh * (Jh - 1 - m) + rh, sw * (Jw - 1 - n) + rw, c]`` (zero past the kernel).
    """
    (kh, kw, c_in, c_out), (sh, sw) = kernel.shape, strides
    jh, jw = -(-kh // sh), -(-kw // sw)
    if (jh * sh, jw * sw) != (kh, kw):
        kernel = tf.pad(kernel, [[0, jh * sh - kh], [0, jw * sw - kw], [0, 0], [0, 0]])
    phases = tf.reshape(kernel, [jh, sh, jw, sw, c_in, c_out])
    phases = tf.reverse(phases, axis=[0, 2])
    phases = tf.transpose(phases, [0, 2, 5, 1, 3, 4])
    return tf.reshape(phases, [jh, jw, c_out, sh * sw * c_in])


FEW_CHANNELS = 4
"""In-process, a strided adjoint onto at most this many channels is the phase convolution."""


def conv_input_gradient(
    upstream: tf.Tensor,
    kernel: tf.Tensor,
    input_hw: tuple[Dim, Dim],
    strides: tuple[int, int],
    padding: str,
) -> tf.Tensor:
    """``d(sum(upstream * conv2d(x, kernel))) / dx`` for ``x`` of spatial size ``input_hw``.

    Inside `drscreen.layers.portable()`: a pad, one stride-1 'VALID' convolution with
    `phase_kernel`, and (stride > 1) the interleaving of the phases and a crop, equal to
    ``tf.nn.conv2d_transpose(upstream, kernel, ...)`` up to summation order; outside it, that
    fused transposed convolution, or for a stride > 1 onto at most `FEW_CHANNELS` channels the
    phase convolution with the fused ops as its gradient.
    """
    if is_portable():
        return _phase_adjoint(upstream, kernel, input_hw, strides, padding)
    if strides != (1, 1) and kernel.shape[2] <= FEW_CHANNELS:
        return _phase_adjoint_with_fused_gradient(upstream, kernel, input_hw, strides, padding)
    shape = tf.stack([tf.shape(upstream)[0], input_hw[0], input_hw[1], kernel.shape[2]])
    return tf.nn.conv2d_transpose(upstream, kernel, shape, strides, padding.upper())


def _phase_adjoint_with_fused_gradient(
    upstream: tf.Tensor,
    kernel: tf.Tensor,
    input_hw: tuple[Dim, Dim],
    strides: tuple[int, int],
    padding: str,
) -> tf.Tensor:
    """`_phase_adjoint` whose gradient is TensorFlow's gradient of the fused adjoint: the
    convolution of the downstream signal (for ``upstream``) and ``Conv2DBackpropFilter``
    (for ``kernel``), both differentiable again."""

    @tf.custom_gradient
    def adjoint(signal, weights):
        def gradient(downstream):
            return (
                tf.nn.conv2d(downstream, weights, strides, padding.upper()),
                tf.raw_ops.Conv2DBackpropFilter(
                    input=downstream,
                    filter_sizes=tf.shape(weights),
                    out_backprop=signal,
                    strides=[1, *strides, 1],
                    padding=padding.upper(),
                ),
            )

        return _phase_adjoint(signal, weights, input_hw, strides, padding), gradient

    # A variable read inside `adjoint` would need a gradient for it too: pass its value.
    return adjoint(upstream, tf.convert_to_tensor(kernel))


def _phase_adjoint(
    upstream: tf.Tensor,
    kernel: tf.Tensor,
    input_hw: tuple[Dim, Dim],
    strides: tuple[int, int],
    padding: str,
) -> tf.Tensor:
    """The adjoint as one stride-1 convolution of the phases (module docstring)."""
    plans = [
        _axis_plan(input_hw[i], spatial_dim(upstream, i + 1), kernel.shape[i], strides[i], padding)
        for i in (0, 1)
    ]
    paddings = [[0, 0], [plans[0][1], plans[0][2]], [plans[1][1], plans[1][2]], [0, 0]]
    padded = tf.pad(upstream, paddings)
    phases = tf.nn.conv2d(padded, phase_kernel(kernel, strides), 1, "VALID")
    (sh, sw), c_in = strides, kernel.shape[2]
    if (sh, sw) == (1, 1):
        return phases
    blocks_h, blocks_w = spatial_dim(phases, 1), spatial_dim(phases, 2)
    # (N, A, B, sh * sw * C) -> (N * A, sh, B, sw * C) -> (N, A * sh, B * sw, C): the phase
    # rows and columns land between the blocks, with one 4-D transpose.
    rows = tf.reshape(phases, [-1, blocks_w, sh, sw * c_in])
    interleaved = tf.reshape(
        tf.transpose(rows, [0, 2, 1, 3]), [-1, blocks_h * sh, blocks_w * sw, c_in]
    )
    offsets = [0, plans[0][3], plans[1][3], 0]
    return tf.slice(interleaved, offsets, [-1, input_hw[0], input_hw[1], -1])


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

    def _input_gradient(self, upstream: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
        input_hw = (spatial_dim(inputs, 1), spatial_dim(inputs, 2))
        kernel = self.cast_weight(self.kernel)
        return conv_input_gradient(upstream, kernel, input_hw, self.strides, self.padding)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        if rule.is_lrp:
            return inputs * self._input_gradient(lrp_ratio(upstream, outputs, rule.epsilon), inputs)
        return self._input_gradient(upstream, inputs)

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
