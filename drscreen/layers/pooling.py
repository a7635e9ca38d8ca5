"""Pooling layers: max (overlapping), average, RMS, global average and global max.

Owns the pooling layers and their backward rules. Max pooling routes the upstream signal to
the FIRST maximum of each window in TensorFlow's scan order, exactly as ``MaxPoolGrad`` does,
including ties (black fundus backgrounds make ties common); in-process TensorFlow uses
``MaxPoolGrad`` itself, portable graphs the equal rule of forward ops
(`drscreen.layers.portability`). Global max pooling splits it
equally between tied maxima as the gradient of ``reduce_max`` does. Under LRP-epsilon, max
pooling routes relevance to the winner and the averaging poolings redistribute it like a
linear layer. Guided back-propagation and deconvnet treat pooling as the gradient does.
"""

import keras
import tensorflow as tf

from drscreen.layers.base import PADDINGS, BackpropLayer, as_pair, lrp_ratio, positive_step
from drscreen.layers.portability import is_portable
from drscreen.layers.rules import GRADIENT
from drscreen.layers.windows import axis_slices, scatter_axis, spatial_dim

RMS_FLOOR = 1e-12
"""Added under the square root of RMS pooling (o_O) so that it stays differentiable at 0."""


def _same_padding(size: int | tf.Tensor, pool: int, stride: int) -> tuple:
    """(before, after) padding of TensorFlow's 'same' pooling along one axis."""
    out = -(-size // stride)
    total = (out - 1) * stride + pool - size
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


def _route_to_first_max(
    values: tf.Tensor, maxima: tf.Tensor, upstream: tf.Tensor, axis: int, window: int, stride: int
) -> tf.Tensor:
    """Backward of 1-D max pooling along spatial ``axis``: each window's FIRST maximum wins.

    ``maxima`` is the pooling of ``values`` ('valid'), ``upstream`` the signal on it. The
    offsets before the last are tested in order, each taking the signal still unserved where
    it holds the maximum (so later ties get zero); the last offset takes what is left, since
    some offset holds the maximum. A candidate never exceeds its window's maximum, so
    ``positive_step(maximum - candidate)`` is exactly 1 where it is not the maximum and 0
    where it is: multiplying by it keeps the signal unchanged or zeroes it, and ``x - x = 0``,
    ``x - 0 = x`` are exact.
    """
    unserved, contributions = upstream, []
    for candidate in axis_slices(values, axis, window - 1, stride, spatial_dim(maxima, axis)):
        still_unserved = unserved * positive_step(maxima - candidate)
        contributions.append(unserved - still_unserved)
        unserved = still_unserved
    contributions.append(unserved)
    return scatter_axis(contributions, axis, stride, spatial_dim(values, axis))


class _WindowPooling(BackpropLayer):
    """Shared configuration of the windowed poolings (``pool_size``, ``strides``)."""

    def __init__(
        self,
        pool_size: int | tuple[int, int],
        strides: int | tuple[int, int] | None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expects (batch, height, width, channels) inputs")

    def _spread(self, per_window: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
        """Scatter the same per-output value to every position of its window.

        A window is a run of rows of a run of columns, so the spread is done along the rows
        (onto the window-column grid), then along the columns.
        """
        spread = per_window
        for axis in (1, 2):
            window, stride = self.pool_size[axis - 1], self.strides[axis - 1]
            spread = scatter_axis([spread] * window, axis, stride, spatial_dim(inputs, axis))
        return spread

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides)})
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class MaxPooling2D(_WindowPooling):
    """Max pooling, overlapping windows allowed (o_O: 3x3, stride 2, 'valid').

    The backward pass routes the upstream signal to each window's first maximum in scan
    order: TensorFlow's ``MaxPoolGrad`` in-process; in a portable graph the same routing with
    forward ops, by masks against the pooled maxima (first among the window's rows, then
    within the row), scattered back, ties included. It is the same for every rule (LRP:
    winner takes all).

    Parameters
    ----------
    pool_size, strides:
        Window size and step (int or pair).
    padding:
        ``"valid"`` or ``"same"`` (TensorFlow's convention).
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] | None = 2,
        padding: str = "valid",
        **kwargs,
    ):
        super().__init__(pool_size, strides, **kwargs)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding

    def call(self, inputs):
        return tf.nn.max_pool2d(inputs, self.pool_size, self.strides, self.padding.upper())

    def _padded(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tuple]:
        """Inputs padded as 'same' pooling pads them (with the lowest value), and the pads."""
        if self.padding == "valid":
            return inputs, (0, 0)
        rows = _same_padding(spatial_dim(inputs, 1), self.pool_size[0], self.strides[0])
        cols = _same_padding(spatial_dim(inputs, 2), self.pool_size[1], self.strides[1])
        lowest = inputs.dtype.min
        padded = tf.pad(inputs, [[0, 0], list(rows), list(cols), [0, 0]], constant_values=lowest)
        return padded, (rows[0], cols[0])

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        if not is_portable():
            # TensorFlow's fused kernel: ~2x faster than the rule below; its gradient
            # (MaxPoolGradGrad) routes like the rule's, whose masks are constants. Stopping the
            # gradient at the forward tensors keeps it from sending zeros back through the
            # forward pass (TensorFlow's gradient returns zeros for both).
            return tf.raw_ops.MaxPoolGrad(
                orig_input=tf.stop_gradient(inputs),
                orig_output=tf.stop_gradient(outputs),
                grad=upstream,
                ksize=[1, *self.pool_size, 1],
                strides=[1, *self.strides, 1],
                padding=self.padding.upper(),
            )
        padded, (top, left) = self._padded(inputs)
        # The first maximum of a window in row-major scan order lies in the first of its rows
        # whose maximum is the window's, at the first column of that row holding it: route
        # through the maxima of each row of the window (over its columns), then within rows.
        (rows, cols), (row_stride, col_stride) = self.pool_size, self.strides
        row_maxima = tf.nn.max_pool2d(padded, [1, cols], [1, col_stride], "VALID")
        grad = _route_to_first_max(row_maxima, outputs, upstream, 1, rows, row_stride)
        grad = _route_to_first_max(padded, row_maxima, grad, 2, cols, col_stride)
        if self.padding == "same":
            grad = grad[
                :, top : top + spatial_dim(inputs, 1), left : left + spatial_dim(inputs, 2), :
            ]
        return grad

    def get_config(self):
        config = super().get_config()
        config["padding"] = self.padding
        return config


@keras.saving.register_keras_serializable(package="drscreen")
class AveragePooling2D(_WindowPooling):
    """Average pooling with 'valid' padding.

    Parameters
    ----------
    pool_size:
        Window size (int or pair).
    strides:
        Step (int or pair); default ``pool_size``.
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, **kwargs)

    def call(self, inputs):
        return tf.nn.avg_pool2d(inputs, self.pool_size, self.strides, "VALID")

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        window = self.pool_size[0] * self.pool_size[1]
        if rule.is_lrp:
            return inputs * self._spread(
                lrp_ratio(upstream, outputs, rule.epsilon) / window, inputs
            )
        return self._spread(upstream / window, inputs)


@keras.saving.register_keras_serializable(package="drscreen")
class RMSPooling2D(_WindowPooling):
    """Root-mean-square pooling ``sqrt(avgpool(x^2) + 1e-12)``, 'valid' (o_O's last pooling).

    Computed in float32 whatever the compute dtype (the 1e-12 floor vanishes in float16).
    Under LRP-epsilon the relevance of a window is shared in proportion to each input's
    contribution ``x^2`` to the mean square.

    Parameters
    ----------
    pool_size:
        Window size (int or pair).
    strides:
        Step (int or pair); default ``pool_size``.
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] | None = None,
        **kwargs,
    ):
        super().__init__(pool_size, strides, **kwargs)

    def _mean_square(self, inputs: tf.Tensor) -> tf.Tensor:
        squares = tf.square(tf.cast(inputs, "float32"))
        return tf.nn.avg_pool2d(squares, self.pool_size, self.strides, "VALID")

    def call(self, inputs):
        return self.cast_input(tf.sqrt(self._mean_square(inputs) + RMS_FLOOR))

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        x = tf.cast(inputs, "float32")
        upstream = tf.cast(upstream, "float32")
        window = self.pool_size[0] * self.pool_size[1]
        if rule.is_lrp:
            ratio = lrp_ratio(upstream, self._mean_square(inputs), rule.epsilon)
            return self.cast_input(tf.square(x) * self._spread(ratio / window, x))
        rms = tf.sqrt(self._mean_square(inputs) + RMS_FLOOR)
        return self.cast_input(x * self._spread(upstream / (rms * window), x))


@keras.saving.register_keras_serializable(package="drscreen")
class GlobalAveragePooling2D(BackpropLayer):
    """Mean over height and width: ``(N, H, W, C) -> (N, C)``."""

    def call(self, inputs):
        return tf.reduce_mean(inputs, axis=[1, 2])

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        area = tf.cast(spatial_dim(inputs, 1) * spatial_dim(inputs, 2), inputs.dtype)
        if rule.is_lrp:
            upstream = lrp_ratio(upstream, outputs, rule.epsilon)
        per_pixel = upstream[:, tf.newaxis, tf.newaxis, :] / area * tf.ones_like(inputs)
        return inputs * per_pixel if rule.is_lrp else per_pixel


@keras.saving.register_keras_serializable(package="drscreen")
class GlobalMaxPooling2D(BackpropLayer):
    """Maximum over height and width: ``(N, H, W, C) -> (N, C)``.

    The backward pass splits the upstream signal equally between tied maxima, as the
    gradient of ``reduce_max`` does; the same routing serves every rule.
    """

    def call(self, inputs):
        return tf.reduce_max(inputs, axis=[1, 2])

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        inputs = self.cast_input(inputs)
        hits = 1 - positive_step(outputs[:, tf.newaxis, tf.newaxis, :] - inputs)
        share = hits / tf.reduce_sum(hits, axis=[1, 2], keepdims=True)
        return share * upstream[:, tf.newaxis, tf.newaxis, :]
