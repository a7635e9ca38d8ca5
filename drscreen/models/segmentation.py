"""A small U-Net that maps a photograph to per-pixel lesion probabilities.

Two models of drscreen share it: the lesion benchmark's pixel-supervised reference (trained on
lesion masks, one map per lesion group) and the lesion student (trained on pseudo-masks drawn
from an image-supervised heatmap, one map of all lesions), which exports beside the screening
model. It is plain Keras, never explained by a heatmap: its map is a forward output, so it
exports to SavedModel, TFLite built-ins and ONNX as it is.

Layout: the o_O normalisation, a 5x5 stride-2 stem, ``depth`` stages of max pooling and a
3x3 convolution doubling the width (the deepest stage convolves twice), a decoder that
upsamples, concatenates the encoder's map of the same scale and convolves, and a last
bilinear upsampling to the input resolution where the normalised photograph is concatenated
before the sigmoid 3x3 convolution. At depth 2 and width 16 it has about 0.1 M parameters.
"""

import keras

from drscreen.layers.normalization import OO_MEAN, OO_STD


def min_side(depth: int) -> int:
    """The input side must be a multiple of this (the stem's stride times each pooling)."""
    return 2 ** (depth + 1)


def segmentation_net(
    size: int, channels: int, width: int = 16, depth: int = 2, name: str = "segmentation"
) -> keras.Model:
    """The U-Net: float32 RGB (N, size, size, 3) in [0, 255] -> (N, size, size, channels) in [0, 1].

    Parameters
    ----------
    size:
        Input side, a multiple of `min_side(depth)`.
    channels:
        Output maps (one sigmoid per channel).
    width:
        Filters of the stem; stage ``k`` has ``width · 2^k``.
    depth:
        Pooled stages after the stem (at least 1).

    Raises
    ------
    ValueError
        For a size that the stages do not divide, or a width or depth below 1.
    """
    if depth < 1 or width < 1 or channels < 1:
        raise ValueError(
            f"segmentation_net needs depth, width and channels >= 1, got {depth}, {width}, "
            f"{channels}"
        )
    if size % min_side(depth):
        raise ValueError(
            f"segmentation_net of depth {depth} needs an input side that is a multiple of "
            f"{min_side(depth)}, got {size}"
        )

    def conv(filters: int, kernel: int = 3, strides: int = 1) -> keras.layers.Layer:
        return keras.layers.Conv2D(filters, kernel, strides, padding="same", activation="relu")

    images = keras.Input((size, size, 3), name="images")
    normalised = keras.layers.Normalization(
        mean=list(OO_MEAN), variance=[s * s for s in OO_STD], name="normalise"
    )(images)
    encoded = [conv(width, 5, 2)(normalised)]
    for level in range(1, depth + 1):
        x = conv(width * 2**level)(keras.layers.MaxPooling2D()(encoded[-1]))
        if level == depth:
            x = conv(width * 2**level)(x)
        encoded.append(x)
    x = encoded[-1]
    for level in range(depth - 1, -1, -1):
        x = keras.layers.Concatenate()([keras.layers.UpSampling2D()(x), encoded[level]])
        x = conv(width * 2**level)(x)
    full = keras.layers.UpSampling2D(interpolation="bilinear")(x)
    maps = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="maps")(
        keras.layers.Concatenate()([full, normalised])
    )
    return keras.Model(images, maps, name=name)
