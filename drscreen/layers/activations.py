"""Element-wise activations and their backward rules.

Owns `LeakyReLU` (ReLU when the slope is 0) and `SquaredReLU`, the ReLU family where guided
back-propagation and deconvnet depart from the gradient, and `Sigmoid`, which every rule
treats as the gradient except LRP (relevance passes through activations unchanged).
"""

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer, positive_step
from drscreen.layers.portability import is_portable
from drscreen.layers.rules import GRADIENT


@keras.saving.register_keras_serializable(package="drscreen")
class LeakyReLU(BackpropLayer):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (o_O: slope 0.01; 0 gives ReLU).

    Backward rules: gradient ``where(x > 0, 1, slope)`` (slope at ``x == 0``, as TensorFlow's
    ``LeakyReluGrad``), read off the output, whose sign is the input's: keeping the
    pre-activation out of the backward graph lets Grappler fuse conv + bias + activation in
    the forward pass. The slope map is ``positive_step(y, slope)``, arithmetic that LiteRT's
    XNNPACK delegate runs, and the upstream signal is multiplied by it, so
    differentiating the backward pass again (double back-propagation) costs one
    multiplication; in-process (outside `drscreen.layers.portable`) it is TensorFlow's fused
    ``LeakyReluGrad`` of the output, one pass instead of three, whose own gradient is the
    same routing. Guided additionally zeroes negative upstream (``relu``); deconvnet passes
    ``relu(upstream)``; LRP passes relevance through.

    In-process, TensorFlow's own gradient of the forward pass (the training step's) reads the
    output too: TensorFlow's registered gradient of ``LeakyRelu`` reads the pre-activation,
    which made Grappler's remapper give up every fusion of the graph ("remapper failed") in
    the small and evidence networks' training steps.

    Parameters
    ----------
    negative_slope:
        Slope for ``x <= 0``, in [0, 1).
    """

    def __init__(self, negative_slope: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= negative_slope < 1:
            raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        if self.negative_slope == 0:
            return tf.nn.relu(inputs)
        if is_portable():
            return tf.nn.leaky_relu(inputs, alpha=self.negative_slope)
        return _leaky_relu_differentiated_at_output(inputs, self.negative_slope)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if rule.name == "lrp_epsilon":
            return upstream
        if rule.name == "deconvnet":
            return tf.nn.relu(upstream)
        if is_portable():
            grad = upstream * positive_step(outputs, self.negative_slope)
        else:
            grad = _leaky_relu_grad(upstream, outputs, self.negative_slope)
        if rule.name == "guided":
            return tf.nn.relu(grad)
        return grad

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


def _leaky_relu_grad(upstream: tf.Tensor, outputs: tf.Tensor, slope: float) -> tf.Tensor:
    """TensorFlow's fused ``LeakyReluGrad`` read off the output (whose sign is the input's).

    The output is a constant of this routing (its derivative is zero almost everywhere):
    `tf.stop_gradient` keeps TensorFlow's gradient of ``LeakyReluGrad`` from sending a tensor
    of zeros back through the forward pass, which heatmap-aware training added to the real
    gradient in every layer (an ``AddN`` of zeros).
    """
    return tf.raw_ops.LeakyReluGrad(
        gradients=upstream, features=tf.stop_gradient(outputs), alpha=slope
    )


def _leaky_relu_differentiated_at_output(inputs: tf.Tensor, slope: float) -> tf.Tensor:
    """``tf.nn.leaky_relu`` whose TensorFlow gradient is `_leaky_relu_grad` of the output."""

    @tf.custom_gradient
    def leaky_relu(x):
        y = tf.nn.leaky_relu(x, alpha=slope)
        return y, lambda upstream: _leaky_relu_grad(upstream, y, slope)

    return leaky_relu(inputs)


@keras.saving.register_keras_serializable(package="drscreen")
class SquaredReLU(BackpropLayer):
    """``relu(x)²``: the evidence activation of `drscreen.models.evidence`.

    Pooled by a global average, it makes the image score a mean of squared local evidence,
    whose gradient with respect to each position is ``2 · relu(x)``: every position's share of
    the heatmap is weighted by its own evidence, so positions without evidence contribute
    nothing and heatmap values compare across images.

    Backward rules: gradient ``2 · relu(x) · upstream`` (0 at ``x <= 0``, as TensorFlow's
    gradient of ``relu(x)²``); ``relu`` is an XNNPACK op, and differentiating the backward pass
    again costs one more ``relu`` gradient. Guided zeroes negative upstream (``relu`` of the
    gradient, the factor being >= 0); deconvnet passes ``relu(upstream)`` as for ReLU; LRP
    passes relevance through.
    """

    def call(self, inputs):
        positive = tf.nn.relu(inputs)
        return positive * positive

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if rule.name == "lrp_epsilon":
            return upstream
        if rule.name == "deconvnet":
            return tf.nn.relu(upstream)
        grad = upstream * (2 * tf.nn.relu(self.cast_input(inputs)))
        if rule.name == "guided":
            return tf.nn.relu(grad)
        return grad


@keras.saving.register_keras_serializable(package="drscreen")
class Sigmoid(BackpropLayer):
    """Logistic sigmoid. Backward ``s * (1 - s)`` for every rule except LRP (pass-through)."""

    def call(self, inputs):
        return tf.sigmoid(inputs)

    def backward(self, inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None):
        if rule.is_lrp:
            return upstream
        return upstream * outputs * (1 - outputs)
