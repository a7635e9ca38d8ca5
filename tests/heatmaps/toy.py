"""A tiny chain of drscreen layers (16x16 input) shared by the heatmap tests."""

import keras

from drscreen import layers


def toy_model(size: int = 16) -> keras.Sequential:
    """normalisation -> conv 3x3 -> leaky -> max pool 3/2 -> conv -> leaky -> GAP -> dense 1.

    Biases are small and of both signs so that leaky ReLUs take both branches.
    """
    bias = keras.initializers.RandomUniform(-0.5, 0.5, seed=3)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.InputNormalization(name="normalization"),
            layers.Conv2D(4, 3, bias_initializer=bias, name="conv1"),
            layers.LeakyReLU(0.01, name="conv1_act"),
            layers.MaxPooling2D(3, strides=2, name="pool1"),
            layers.Conv2D(6, 3, bias_initializer=bias, name="conv2"),
            layers.LeakyReLU(0.01, name="conv2_act"),
            layers.GlobalAveragePooling2D(name="global_pool"),
            layers.Dense(1, name="grade"),
        ],
        name="toy",
    )
