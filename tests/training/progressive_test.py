"""Progressive resizing copies, resizes or re-initialises each variable as documented."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers, models
from drscreen.training import progressive


def _net(size: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.Conv2D(2, 3, untied_bias=True, name="conv"),
            layers.Flatten(name="flatten"),
            layers.Dense(1, name="dense"),
        ],
        name="net",
    )


def test_transfer_from_16_to_32_pixels():
    """Kernel copied, untied bias resized bilinearly, flatten-dense kernel left fresh."""
    small, large = _net(16), _net(32)
    fresh_dense = large.get_layer("dense").kernel.numpy().copy()
    transfers = progressive.transfer_weights(small, large)
    actions = {t.path: t.action for t in transfers}
    assert actions == {
        "net/conv/kernel": progressive.COPIED,
        "net/conv/bias": progressive.RESIZED,
        "net/dense/kernel": progressive.REINITIALISED,
        "net/dense/bias": progressive.COPIED,
    }
    np.testing.assert_array_equal(large.get_layer("conv").kernel, small.get_layer("conv").kernel)
    expected_bias = tf.image.resize(small.get_layer("conv").bias.numpy()[None], (32, 32))[0]
    np.testing.assert_allclose(large.get_layer("conv").bias, expected_bias, rtol=1e-6)
    np.testing.assert_array_equal(large.get_layer("dense").kernel, fresh_dense)


def test_different_architectures_are_refused():
    """No shared layer with weights, or a same-named layer of another kind: refused by name."""
    other = keras.Sequential(
        [keras.Input((16, 16, 3)), layers.Flatten(name="flat"), layers.Dense(1, name="out")]
    )
    with pytest.raises(ValueError, match="no layer with weights shares a name"):
        progressive.transfer_weights(other, _net(16))
    renamed = keras.Sequential(
        [keras.Input((16, 16, 3)), layers.Flatten(name="flatten"), layers.Dense(2, name="conv")]
    )
    with pytest.raises(ValueError, match="layer conv of net from the Dense of that name"):
        progressive.transfer_weights(renamed, _net(16))


def test_oO_stages_grow_one_conv_block_at_a_time():
    """112 -> 224 px: the 8 convs of the 3-block net are copied (untied biases resized), the
    4th block is new, dense1 (more features) fresh, dense2 and the grade unit copied."""
    small = models.build("oO_netA", input_size=112, width=2)
    large = models.build("oO_netA", input_size=224, width=2)
    assert [layer.name for layer in small.layers if layer.name.startswith("conv")][-2:] == [
        "conv8",
        "conv8_act",
    ]
    actions = {
        t.path.split("/", 1)[1]: t.action for t in progressive.transfer_weights(small, large)
    }
    for index in range(1, 9):
        assert actions[f"conv{index}/kernel"] == progressive.COPIED
        assert actions[f"conv{index}/bias"] == progressive.RESIZED
    for index in (9, 10, 11):
        assert actions[f"conv{index}/kernel"] == actions[f"conv{index}/bias"] == progressive.NEW
    assert actions["dense1/kernel"] == progressive.REINITIALISED
    assert actions["dense2/kernel"] == actions["grade/kernel"] == progressive.COPIED
    np.testing.assert_array_equal(
        large.get_layer("conv8").kernel.numpy(), small.get_layer("conv8").kernel.numpy()
    )
