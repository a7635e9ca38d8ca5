"""The backward engine: one forward pass storing each layer's input and output, one backward.

Owns running a chain of `drscreen.layers.BackpropLayer` forward (`forward` -> `Trace`) and
backward under a rule (`backward`, `input_gradient`), plus the validation of image batches.
Every op involved is an ordinary forward op, so the whole score + heatmap computation
exports to TFLite built-ins and ONNX, and can be differentiated again (double
back-propagation, Quellec et al. 2017). Works eagerly and inside `tf.function`, with an
unknown batch size. Must not know about datasets, training loops or heatmap post-processing.
"""

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer
from drscreen.layers.chain import Trace, chain_layers, trace_backward, trace_forward
from drscreen.layers.rules import GRADIENT, BackwardRule

FLOAT16_SEED_SCALE = 2.0**10
"""The seed of a float16 backward pass in `input_gradient`: from a seed of 1, the pixel
gradients of an o_O net (about 1e-6) fall below float16's smallest normal (6e-5) and half of
them flush to zero. Every rule is linear in its seed, so the result divided by it is exact
up to rounding (heatmap-aware training scales its own seed the same way)."""


def validate_images(
    images: tf.Tensor,
    expected_hw: tuple[int | None, int | None] | None = None,
    expected_channels: int | None = None,
) -> tf.Tensor:
    """Check an image batch ``(N, H, W, C)`` and return it as a float tensor.

    Raises
    ------
    TypeError
        If the pixels are not floating point.
    ValueError
        On a wrong rank, height/width or channel count, or (when executing eagerly) NaN/Inf
        pixels. Inside `tf.function` the finiteness check is skipped: assertion ops would
        not export to TFLite.
    """
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(f"images must be floating point, got dtype {images.dtype.name}")
    shape = images.shape
    if shape.rank != 4:
        raise ValueError(f"images must have shape (batch, height, width, channels), got {shape}")
    if expected_channels is not None and shape[-1] not in (None, expected_channels):
        raise ValueError(f"images have {shape[-1]} channels, the model expects {expected_channels}")
    if expected_hw is not None:
        for axis, (actual, expected) in enumerate(zip(shape[1:3], expected_hw, strict=True)):
            if None not in (actual, expected) and actual != expected:
                raise ValueError(
                    f"images have {('height', 'width')[axis]} {actual}, the model expects "
                    f"{expected} (shape {shape})"
                )
    if tf.executing_eagerly():
        bad = int(tf.size(images)) - int(tf.math.count_nonzero(tf.math.is_finite(images)))
        if bad:
            raise ValueError(f"images contain {bad} NaN or infinite pixel values")
    return images


def _input_spec(model: keras.Model | BackpropLayer) -> tuple[tuple | None, int | None]:
    """The (height, width) and channels a built model expects, ``(None, None)`` if unknown."""
    try:
        shape = model.inputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):
        return None, None
    if len(shape) != 4:
        return None, None
    return (shape[1], shape[2]), shape[3]


def forward(
    model: keras.Model | BackpropLayer, images: tf.Tensor, training: bool = False
) -> tuple[tf.Tensor, Trace]:
    """Run ``model`` layer by layer on ``images`` and keep what the backward pass needs.

    Returns
    -------
    The model's output (e.g. ``(N, 1)``) and the `Trace` of the pass.
    """
    x = validate_images(images, *_input_spec(model))
    return trace_forward(chain_layers(model), x, training)


def backward(
    trace: Trace,
    seed: tf.Tensor,
    rule: BackwardRule = GRADIENT,
    training: bool = False,
    stop_at: str | None = None,
) -> tf.Tensor:
    """Propagate ``seed`` from the output back through the traced chain under ``rule``.

    With the gradient rule the result is ``d(sum(seed * output)) / d(images)``, in the
    images' dtype; with ``stop_at`` it is taken with respect to the OUTPUT of the layer of
    that name instead (Grad-CAM), in its compute dtype.
    """
    stop_index = None if stop_at is None else trace.index(stop_at)
    output = trace.outputs[-1]
    signal = tf.cast(tf.convert_to_tensor(seed), output.dtype)
    if not signal.shape.is_compatible_with(output.shape):
        raise ValueError(f"seed has shape {signal.shape}, the model output {output.shape}")
    signal = trace_backward(trace, signal, rule, training, stop_index)
    if stop_index is not None:
        return signal
    return tf.cast(signal, trace.inputs[0].dtype)


def input_gradient(
    model: keras.Model | BackpropLayer,
    images: tf.Tensor,
    rule: BackwardRule = GRADIENT,
    training: bool = False,
    output_index: int = 0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The model's outputs and the backward pass of output ``output_index`` to the images.

    Returns
    -------
    ``(outputs, gradient)``: outputs ``(N, K)`` and the gradient (or relevance) of
    ``outputs[:, output_index]`` with respect to ``images``, shaped like ``images``.
    """
    outputs, trace = forward(model, images, training)
    depth = outputs.shape[-1]
    if outputs.shape.rank != 2 or depth is None:
        raise ValueError(f"model output must be (batch, outputs), got {outputs.shape}")
    if not 0 <= output_index < depth:
        raise ValueError(f"output_index {output_index} is out of range for {depth} outputs")
    scale = FLOAT16_SEED_SCALE if outputs.dtype == tf.float16 else 1.0
    seed = tf.zeros_like(outputs) + tf.one_hot(output_index, depth, dtype=outputs.dtype) * scale
    return outputs, backward(trace, seed, rule, training) / scale
