"""Tests of Grad-CAM: the weighting by hand, the engine's layer gradient against a tape."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps.gradcam import default_gradcam_layer, gradcam, gradcam_map
from tests.heatmaps.toy import toy_model


def test_gradcam_weighting_by_hand():
    """alpha_k = spatial mean of G_k; map = relu(sum_k alpha_k A_k); same-size resize = identity.

    A_0 = [[1, 2], [3, 4]], G_0 mean = (1 + 1 + 1 + 1) / 4 = 1
    A_1 = [[4, 0], [0, 0]], G_1 mean = (-2 + 0 + 0 - 2) / 4 = -1
    map = relu(A_0 - A_1) = relu([[-3, 2], [3, 4]]) = [[0, 2], [3, 4]]
    """
    activations = np.stack([[[1, 2], [3, 4]], [[4, 0], [0, 0]]], axis=-1)[None].astype(np.float32)
    gradients = np.stack([np.ones((2, 2)), [[-2, 0], [0, -2]]], axis=-1)[None].astype(np.float32)
    result = gradcam_map(tf.constant(activations), tf.constant(gradients), (2, 2))
    np.testing.assert_allclose(result.numpy(), [[[0, 2], [3, 4]]], atol=1e-6)


def test_gradcam_map_resizes_bilinearly_to_input():
    """A constant map stays constant at the input resolution."""
    activations = tf.fill((2, 3, 3, 4), 2.0)
    gradients = tf.fill((2, 3, 3, 4), 0.5)
    result = gradcam_map(activations, gradients, (12, 12))
    assert result.shape == (2, 12, 12)
    np.testing.assert_allclose(result.numpy(), 4.0, atol=1e-6)  # 4 channels x 0.5 x 2


def test_default_layer_is_the_one_before_the_last_pooling():
    """In the toy model that is the activation of the last convolution."""
    assert default_gradcam_layer(toy_model()) == "conv2_act"


def test_gradcam_equals_tape_on_feature_map():
    """The engine's gradient at conv2_act gives the same map as a tape on the split model."""
    model = toy_model()
    images = tf.constant(np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)), tf.float32)
    split = [layer.name for layer in model.layers].index("conv2_act") + 1
    head, tail = model.layers[:split], model.layers[split:]
    features = images
    for layer in head:
        features = layer(features)
    with tf.GradientTape() as tape:
        tape.watch(features)
        outputs = features
        for layer in tail:
            outputs = layer(outputs)
        total = tf.reduce_sum(outputs)
    gradients = tape.gradient(total, features).numpy()
    weights = gradients.mean(axis=(1, 2), keepdims=True)
    expected = np.maximum((weights * features.numpy()).sum(axis=-1), 0.0)
    expected = tf.image.resize(expected[..., None], (16, 16), method="bilinear")[..., 0]
    scores, heatmaps = gradcam(model, images)
    np.testing.assert_allclose(scores.numpy(), outputs.numpy()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(
        heatmaps.numpy(), expected.numpy(), atol=1e-5 * float(tf.reduce_max(expected)) + 1e-7
    )


def test_gradcam_rejects_unknown_or_flat_layer():
    """Unknown layer names and non-spatial layers give a clear error."""
    images = tf.zeros((1, 16, 16, 3))
    with pytest.raises(ValueError, match="no layer named .nope."):
        gradcam(toy_model(), images, layer_name="nope")
    with pytest.raises(ValueError, match="4-D feature map"):
        gradcam(toy_model(), images, layer_name="grade")
