"""Model randomisation from the top: which layers are re-drawn, how, and the rest kept."""

import math

import keras
import numpy as np

from drscreen import models
from drscreen.benchmark import sanity


def _kernel_layers(model):
    return [
        layer for layer in model.layers if any(w.path.endswith("kernel") for w in layer.weights)
    ]


def test_top_share_is_redrawn_at_glorot_scale_and_the_rest_kept():
    keras.utils.set_random_seed(0)
    model = models.build("evidence", input_size=64, width=8)
    before = [w.numpy().copy() for w in model.weights]
    copy = sanity.randomised_copy(model, 0.5, seed=1)
    weighted = _kernel_layers(copy)
    redrawn = math.ceil(0.5 * len(weighted))
    for index, (layer, original) in enumerate(zip(weighted, _kernel_layers(model), strict=True)):
        for new, old in zip(layer.weights, original.weights, strict=True):
            if index < len(weighted) - redrawn:
                np.testing.assert_array_equal(new.numpy(), old.numpy())
            elif new.path.endswith("bias"):
                assert not np.any(new.numpy())
            elif new.path.endswith("kernel"):
                shape = new.shape
                std = math.sqrt(2.0 / (np.prod(shape[:-1]) + shape[-1]))
                values = new.numpy()
                assert np.abs(values).max() <= 2 * std + 1e-7
                assert not np.allclose(values, old.numpy())
                if values.size >= 1000:  # a truncated normal at 2 sd keeps ~88 % of the sd
                    assert 0.75 * std < values.std() < 0.95 * std
    for weight, value in zip(model.weights, before, strict=True):  # the original is untouched
        np.testing.assert_array_equal(weight.numpy(), value)


def test_everything_is_redrawn_and_the_copy_still_predicts():
    keras.utils.set_random_seed(0)
    model = models.build("small", input_size=64, width=4)
    copy = sanity.randomised_copy(model, 1.0, seed=2)
    for layer, original in zip(_kernel_layers(copy), _kernel_layers(model), strict=True):
        kernel = next(w for w in layer.weights if w.path.endswith("kernel"))
        old = next(w for w in original.weights if w.path.endswith("kernel"))
        assert not np.allclose(kernel.numpy(), old.numpy())
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    assert np.isfinite(copy(images).numpy()).all()
    again = sanity.randomised_copy(model, 1.0, seed=2)  # seeded
    for a, b in zip(copy.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_unet_is_randomised_layer_by_layer_inside_its_skips():
    """The U-Net evidence net's body sits inside skip connections: the cascade counts its
    convolutions one by one in forward order, so the top half re-draws the decoder's last
    convolutions and the head and keeps the encoder (not only the head, as counting each skip
    as one layer would)."""
    keras.utils.set_random_seed(0)
    model = models.build("unet_evidence", input_size=32, width=4)
    copy = sanity.randomised_copy(model, 0.5, seed=1)
    names = [layer.name for layer in sanity._weighted_layers(model)]
    assert names == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "evidence", "grade"]

    def kernels(network):
        return {layer.name: layer.kernel.numpy() for layer in sanity._weighted_layers(network)}

    originals, drawn = kernels(model), kernels(copy)
    changed = {name for name in originals if not np.array_equal(originals[name], drawn[name])}
    assert changed == {"conv5", "conv6", "evidence", "grade"}
