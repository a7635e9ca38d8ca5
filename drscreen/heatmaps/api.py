"""`compute(model, images, method=...)`: one entry point for every heatmap method.

Owns the method registry, input validation and field-of-view masking shared by all methods:
each method returns the model's grades (its forward output, unchanged) and unmasked heatmaps
(N, H, W) at the input resolution; `compute` validates the images first and multiplies the
heatmaps by the field-of-view mask last. Works eagerly and inside `tf.function` (also with
an unknown batch size).
"""

import inspect
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.fundus import field_of_view_mask
from drscreen.heatmaps import backprop
from drscreen.heatmaps.deconvnet import deconvnet
from drscreen.heatmaps.gradcam import gradcam
from drscreen.heatmaps.gradient_input import gradient_input
from drscreen.heatmaps.guided_backprop import guided_backprop
from drscreen.heatmaps.integrated_gradients import integrated_gradients
from drscreen.heatmaps.lrp import lrp
from drscreen.heatmaps.sensitivity import sensitivity
from drscreen.heatmaps.smoothgrad import smoothgrad

Method = Callable[..., tuple[tf.Tensor, tf.Tensor]]

METHODS: dict[str, Method] = {
    "sensitivity": sensitivity,
    "gradient_input": gradient_input,
    "guided_backprop": guided_backprop,
    "deconvnet": deconvnet,
    "lrp": lrp,
    "gradcam": gradcam,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
}


def method_options(method: str) -> tuple[str, ...]:
    """The keyword options ``method`` accepts (besides ``model`` and ``images``)."""
    _check_method(method)
    parameters = inspect.signature(METHODS[method]).parameters
    return tuple(name for name in parameters if name not in ("model", "images"))


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown heatmap method {method!r}; methods: {', '.join(METHODS)}")


def _input_hw(model: keras.Model) -> tuple[int, int] | None:
    shape = model.inputs[0].shape if model.inputs else None
    if shape is None or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def _fov_masks(fov_masks: tf.Tensor | np.ndarray | None, images: tf.Tensor) -> tf.Tensor:
    if fov_masks is None:
        return field_of_view_mask(images)
    masks = tf.convert_to_tensor(fov_masks)
    if masks.shape.rank != 3 or masks.shape[1:] != images.shape[1:3]:
        raise ValueError(
            f"fov_masks must be (N, H, W) matching images {images.shape}, got {masks.shape}"
        )
    return tf.cast(masks, tf.float32)


def compute(
    model: keras.Model,
    images: tf.Tensor | np.ndarray,
    method: str = "sensitivity",
    fov_masks: tf.Tensor | np.ndarray | None = None,
    **options,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades and field-of-view-masked heatmaps of ``images`` by ``method``.

    Parameters
    ----------
    model:
        A chain of drscreen layers (e.g. from `drscreen.models.build`) with output (N, 1).
    images:
        float32 RGB (N, H, W, 3) in [0, 255] at the model's input size.
    method:
        One of `METHODS`.
    fov_masks:
        Field-of-view masks (N, H, W), 1 inside; derived from the images with
        `drscreen.data.fundus.field_of_view_mask` when omitted.
    **options:
        The method's options (see `method_options`), e.g. ``reduction="max"`` for
        sensitivity, ``steps=64`` for integrated gradients, ``training=True`` for
        heatmap-aware training.

    Returns
    -------
    scores:
        The model's grade output (N,), as the plain forward pass gives it.
    heatmaps:
        float32 (N, H, W), zero outside the field of view.

    Raises
    ------
    ValueError
        For an unknown method or option, images of the wrong rank, channels or size,
        NaN/Inf pixels (eagerly), or masks of the wrong shape.
    TypeError
        For non-float images.
    """
    _check_method(method)
    unknown = sorted(set(options) - set(method_options(method)))
    if unknown:
        raise ValueError(
            f"heatmap method {method!r} has no option(s) {unknown}; "
            f"its options: {method_options(method)}"
        )
    images = backprop.validate_images(images, expected_hw=_input_hw(model))
    scores, heatmaps = METHODS[method](model, images, **options)
    return scores, heatmaps * _fov_masks(fov_masks, images)
