"""The paper's heatmap: the sensitivity of the predicted grade to every input pixel.

H(x, y) = reduce_c f(∂ŷ/∂I(x, y, c)) (Quellec et al. 2017; Simonyan et al. 2014), with the
channel reduction (``"sum"`` or ``"max"``) and the form f (``"abs"``: |g|, ``"square"``: g²,
``"times_input"``: |g·I|, and the signed halves ``"increase"``: max(g, 0) and ``"decrease"``:
max(-g, 0)) configurable; the default is the sum of |g|. The signed halves tell lesion types
apart without masks: brightening a bright lesion (exudate) raises the grade, brightening a
dark one (haemorrhage, microaneurysm) lowers it, so ``"increase"`` maps bright lesions and
``"decrease"`` red ones (|g| is their sum). The gradient comes
from the layers' own backward rules (`drscreen.heatmaps.backprop`), so the heatmap exports
to TFLite/ONNX and can be differentiated again (heatmap-aware training).
"""

import keras
import tensorflow as tf

from drscreen.heatmaps import backprop

REDUCTIONS = ("sum", "max")
FORMS = ("abs", "square", "times_input", "increase", "decrease")


def channel_map(
    gradient: tf.Tensor, images: tf.Tensor, reduction: str = "sum", form: str = "abs"
) -> tf.Tensor:
    """Reduce an input-space signal (N, H, W, C) to a heatmap (N, H, W), float32.

    Parameters
    ----------
    gradient:
        Gradient (or guided/deconvnet signal) with respect to ``images``.
    images:
        The images the signal belongs to (used by ``form="times_input"``).
    reduction:
        ``"sum"`` or ``"max"`` over the colour channels.
    form:
        ``"abs"`` |g|, ``"square"`` g², ``"times_input"`` |g·I|, ``"increase"`` max(g, 0) or
        ``"decrease"`` max(-g, 0).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction {reduction!r} is not one of {REDUCTIONS}")
    if form not in FORMS:
        raise ValueError(f"form {form!r} is not one of {FORMS}")
    gradient = tf.cast(gradient, tf.float32)
    if form == "abs":
        values = tf.abs(gradient)
    elif form == "square":
        values = tf.square(gradient)
    elif form == "increase":
        values = tf.nn.relu(gradient)
    elif form == "decrease":
        values = tf.nn.relu(-gradient)
    else:
        values = tf.abs(gradient * tf.cast(images, tf.float32))
    if reduction == "sum":
        return tf.reduce_sum(values, axis=-1)
    return tf.reduce_max(values, axis=-1)


def sensitivity(
    model: keras.Model,
    images: tf.Tensor,
    reduction: str = "sum",
    form: str = "abs",
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and sensitivity heatmaps (N, H, W) from one forward and one backward pass.

    Parameters
    ----------
    model:
        A chain of drscreen layers with a single grade output (N, 1).
    images:
        Float RGB (N, H, W, 3) in [0, 255].
    reduction, form:
        See `channel_map`.
    training:
        Run the forward pass (dropout) in training mode: heatmap-aware training
        differentiates this heatmap with respect to the weights.
    """
    outputs, gradient = backprop.input_gradient(model, images, training=training)
    return outputs[:, 0], channel_map(gradient, images, reduction, form)
