"""Progressive resizing copies, resizes or re-initialises each variable as documented."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
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
    """Layer counts must match."""
    other = keras.Sequential([keras.Input((16, 16, 3)), layers.Flatten(), layers.Dense(1)])
    with pytest.raises(ValueError, match="3 layers against 2"):
        progressive.transfer_weights(other, _net(16))
