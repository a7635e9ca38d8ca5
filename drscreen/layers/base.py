"""The `BackpropLayer` contract: a Keras layer that knows its own backward pass.

Owns the abstract base class and the small tensor helpers every layer's backward shares
(LRP-epsilon stabilised division, masks from arithmetic, weight casting, argument checks).
Holds no concrete layer.

Backward rules stay inside LiteRT's XNNPACK delegate (the default CPU path on devices) only
if every op is one XNNPACK runs: arithmetic (add, sub, mul, div, min, max, clamp, ceil,
floor, abs), convolutions with constant kernels, pooling, pads, unit-stride slices,
reshapes, concatenations, transposes. Comparisons, ``where``/select, ``sign``, casts,
``zeros_like``, strided slices that drop an axis and transposed convolutions whose output
shape depends on the batch run on TFLite's slow reference kernels instead. So masks are built
with `positive_step` and applied by multiplication.
"""

import abc

import keras
import tensorflow as tf

from drscreen.layers.rules import GRADIENT, BackwardRule

PADDINGS = ("valid", "same")
"""Padding modes of the windowed layers (TensorFlow's convention)."""


class BackpropLayer(keras.layers.Layer, abc.ABC):
    """A Keras layer with an explicit backward pass made of ordinary forward ops.

    Subclasses implement `backward`. Layers whose backward needs something the forward pass
    drew at random (dropout masks) also override `forward` to return it; the engine
    (`drscreen.heatmaps.backprop`) stores it in the trace and hands it back as ``saved``.
    """

    def forward(
        self, inputs: tf.Tensor, training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Run the layer; return its output and what `backward` needs besides (``None`` here)."""
        return self(inputs, training=training), None

    @abc.abstractmethod
    def backward(
        self,
        inputs: tf.Tensor,
        outputs: tf.Tensor,
        upstream: tf.Tensor,
        rule: BackwardRule = GRADIENT,
        training: bool = False,
        saved: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Propagate ``upstream`` (w.r.t. this layer's output) to this layer's input.

        Parameters
        ----------
        inputs, outputs:
            This layer's forward input and output from the same pass.
        upstream:
            Gradient (or relevance, for LRP) with respect to ``outputs``.
        rule:
            The backward rule (`drscreen.layers.rules`).
        training:
            Whether the forward pass ran in training mode.
        saved:
            What `forward` returned besides the output (``None`` for most layers).

        Returns
        -------
        The gradient (or relevance) with respect to ``inputs``, in the compute dtype.
        """

    def cast_weight(self, weight: keras.Variable) -> tf.Tensor:
        """The weight's value in this layer's compute dtype (mixed precision)."""
        return tf.cast(weight, self.compute_dtype)

    def cast_input(self, tensor: tf.Tensor) -> tf.Tensor:
        """``tensor`` in this layer's compute dtype."""
        return tf.cast(tensor, self.compute_dtype)


def positive_step(values: tf.Tensor, low: float = 0.0) -> tf.Tensor:
    """Exactly 1 where ``values > 0`` and ``low`` (in [0, 1)) elsewhere, from arithmetic.

    ``clip(ceil(values), low, 1)``: TFLite's CEIL, MINIMUM and MAXIMUM (or RELU), all XNNPACK
    ops, where ``values > 0`` would be a comparison and a select or cast that XNNPACK does not
    run; in TensorFlow two element-wise passes. Exact for every positive float, subnormals
    included (on a runtime that flushes subnormals to zero, as TensorFlow's CPU kernels do,
    they count as 0 here and in a comparison alike). A mask is piecewise constant, so its
    gradient is cut.
    """
    step = tf.clip_by_value(tf.math.ceil(values), tf.cast(low, values.dtype), 1)
    return tf.stop_gradient(step)


def lrp_ratio(relevance: tf.Tensor, z: tf.Tensor, epsilon: float) -> tf.Tensor:
    """``relevance / (z + epsilon * sign(z))`` with ``sign(0) = +1`` (Bach et al. 2015)."""
    stabiliser = tf.where(z >= 0, tf.cast(epsilon, z.dtype), tf.cast(-epsilon, z.dtype))
    return relevance / (z + stabiliser)


def as_pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """``value`` as a pair of positive ints (an int is repeated); ``name`` is for the error."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return (int(pair[0]), int(pair[1]))
