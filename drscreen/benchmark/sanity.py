"""Adebayo et al. (2018) model-randomisation check: the same network, weights re-drawn.

`randomised_copy` re-initialises the weights of a trained chain cascading from the top: the
last ``share`` of its layers with a kernel get kernels drawn from a truncated normal of Glorot scale
(std sqrt(2 / (fan_in + fan_out)), cut at 2 std) and zero biases; the other layers keep their
trained weights. A heatmap method whose lesion figures survive this explains image features,
not the model.
"""

import math

import keras
import numpy as np

from drscreen.layers import SkipConcat

CASCADE = {"top half": 0.5, "all": 1.0}
"""Randomisation levels reported: share of the weighted layers re-drawn, from the top (the top
layer alone can be a single scale, e.g. the evidence net's pooling weight, which moves no
candidate)."""


def _flattened(layers_: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
    """Layers in forward order, a skip connection's inner chain in place of the skip (so a
    U-Net's body counts layer by layer, not as one layer)."""
    flat = []
    for layer in layers_:
        if isinstance(layer, SkipConcat):
            flat += _flattened(layer.inner)
        else:
            flat.append(layer)
    return flat


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer
        for layer in _flattened(model.layers)
        if any(w.path.endswith("kernel") for w in layer.weights)
    ]


def _random_kernel(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = int(np.prod(shape[:-1])), int(shape[-1])
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():  # truncate: redraw what falls beyond 2 sd
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return (values * np.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def randomised_copy(model: keras.Model, share: float, seed: int) -> keras.Model:
    """A copy of ``model`` with the top ``share`` (rounded up) of its weighted layers re-drawn."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    weighted = _weighted_layers(copy)
    chosen = weighted[len(weighted) - math.ceil(share * len(weighted)) :]
    rng = np.random.default_rng(seed)
    for layer in chosen:
        for weight in layer.weights:
            if weight.path.endswith("kernel"):
                weight.assign(_random_kernel(tuple(weight.shape), rng))
            elif weight.path.endswith("bias"):
                weight.assign(np.zeros(weight.shape, np.float32))
    return copy
