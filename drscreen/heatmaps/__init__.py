"""Heatmap methods: the paper's sensitivity map and competing methods, one module each.

Owns the backward pass over a model's layers (`backprop`, the engine) and the methods built
on it; `compute(model, images, method=...)` is the entry point. Each method's maths is a
pure function in its module (`channel_map`, `attribution_map`, `gradcam_map`,
`trapezoid_weights`, `noisy_copies`). `overlay` draws heatmaps onto photographs. Must not
know about datasets, saved runs or training (running a saved model over image files is
`drscreen.commands.predict`).

Methods (`METHODS`): ``sensitivity`` (Quellec et al. 2017; default), ``gradient_input``,
``guided_backprop``, ``deconvnet``, ``lrp`` (epsilon rule), ``gradcam``,
``integrated_gradients``, ``smoothgrad``.
"""

from drscreen.heatmaps.api import METHODS, compute, method_options
from drscreen.heatmaps.overlay import heatmap_overlay, save_overlay
from drscreen.heatmaps.sensitivity import channel_map, sensitivity

__all__ = [
    "METHODS",
    "channel_map",
    "compute",
    "heatmap_overlay",
    "method_options",
    "save_overlay",
    "sensitivity",
]
