"""`chain_layers`: the layer chain of a model, and the refusal of anything that is not one."""

import keras
import pytest

from drscreen import layers
from drscreen.layers.chain import chain_layers

SHAPE = (24, 24, 3)


def test_chain_layers_rejects_foreign_layers_and_branches():
    """Keras' own layers and branching graphs are refused, naming the offending layer(s)."""
    foreign = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(2, 3, name="keras_conv")])
    with pytest.raises(TypeError, match="'keras_conv'.*not a drscreen BackpropLayer"):
        chain_layers(foreign)
    inputs = keras.Input(SHAPE)
    trunk = layers.Conv2D(2, 3)(inputs)
    merged = keras.layers.Add(name="merge")([layers.LeakyReLU()(trunk), layers.Sigmoid()(trunk)])
    with pytest.raises(TypeError, match="not a chain: layer 'merge' takes 2 inputs"):
        chain_layers(keras.Model(inputs, merged))
    with pytest.raises(TypeError, match="not a chain: it has 1 inputs and 2 outputs"):
        chain_layers(keras.Model(inputs, [trunk, merged]))
    with pytest.raises(TypeError, match="expected a keras.Model"):
        chain_layers(lambda x: x)
