"""Grad-CAM (Selvaraju et al. 2017) on a chosen convolutional feature map.

With A (N, h, w, K) the output of the chosen layer and G = ∂ŷ/∂A, the map is
relu(Σ_k α_k A_k) with α_k the spatial mean of G_k, resized bilinearly to the input
resolution. The default layer is the one just before the network's last pooling (in the zoo:
the leaky ReLU of the last convolution).
"""

import keras
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps import backprop
from drscreen.layers.chain import chain_layers

POOLING_LAYERS = (
    layers.MaxPooling2D,
    layers.AveragePooling2D,
    layers.RMSPooling2D,
    layers.GlobalAveragePooling2D,
    layers.GlobalMaxPooling2D,
)


def gradcam_map(
    activations: tf.Tensor, gradients: tf.Tensor, output_hw: tuple[int, int]
) -> tf.Tensor:
    """relu(Σ_k mean_ij(G_ijk) · A_k) (N, h, w) resized bilinearly to ``output_hw``.

    Parameters
    ----------
    activations, gradients:
        The feature map A (N, h, w, K) and the gradient of the score with respect to it.
    output_hw:
        The input resolution (H, W).

    Returns
    -------
    float32 heatmaps (N, H, W).
    """
    activations = tf.cast(activations, tf.float32)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))
    return tf.image.resize(cam[..., tf.newaxis], output_hw, method="bilinear")[..., 0]


def default_gradcam_layer(model: keras.Model) -> str:
    """Name of the layer just before the model's last pooling layer."""
    chain = chain_layers(model)
    pooling = [index for index, layer in enumerate(chain) if isinstance(layer, POOLING_LAYERS)]
    if not pooling or pooling[-1] == 0:
        raise ValueError(
            f"model {model.name!r} has no layer before a pooling layer; pass layer_name"
        )
    return chain[pooling[-1] - 1].name


def gradcam(
    model: keras.Model,
    images: tf.Tensor,
    layer_name: str | None = None,
    training: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades (N,) and Grad-CAM heatmaps (N, H, W) on the feature map of ``layer_name``.

    Parameters
    ----------
    layer_name:
        A layer with a 4-D output (N, h, w, K); default `default_gradcam_layer`.
    """
    layer_name = layer_name or default_gradcam_layer(model)
    outputs, trace = backprop.forward(model, images, training=training)
    activations = trace.output_of(layer_name)
    if activations.shape.rank != 4:
        raise ValueError(
            f"Grad-CAM needs a 4-D feature map; layer {layer_name!r} outputs "
            f"shape {activations.shape}"
        )
    gradients = backprop.backward(
        trace, tf.ones_like(outputs), training=training, stop_at=layer_name
    )
    return outputs[:, 0], gradcam_map(activations, gradients, tuple(images.shape[1:3]))
