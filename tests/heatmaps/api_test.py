"""Tests of `compute`: registry, validation, masking, eager and graph execution."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.data.fundus import field_of_view_mask
from drscreen.heatmaps import backprop
from drscreen.heatmaps.api import METHODS, compute, method_options
from drscreen.heatmaps.sensitivity import sensitivity
from drscreen.layers.rules import DECONVNET, GUIDED, lrp_epsilon
from tests.heatmaps.toy import toy_model

FAST_OPTIONS = {
    "integrated_gradients": {"steps": 4, "points_per_batch": 5},
    "smoothgrad": {"samples": 2, "samples_per_batch": 2},
}


def _fundus_like(count: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    """Bright random disc on a black background, so the derived FOV mask is not trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = (np.hypot(yy, xx) < size * 0.4)[None, ..., None]
    return (rng.uniform(60, 255, (count, size, size, 3)) * disc).astype(np.float32)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_shapes_scores_and_mask(method):
    """Heatmaps (N, H, W) zero outside the FOV; grades equal the plain forward pass."""
    model = toy_model()
    images = _fundus_like()
    masks = np.ones((2, 16, 16), np.float32)
    masks[:, :, :5] = 0.0
    scores, heatmaps = compute(model, images, method, masks, **FAST_OPTIONS.get(method, {}))
    assert scores.shape == (2,) and heatmaps.shape == (2, 16, 16)
    assert heatmaps.dtype == tf.float32
    np.testing.assert_allclose(scores.numpy(), model(images)[:, 0].numpy(), rtol=1e-6)
    assert np.all(heatmaps.numpy()[:, :, :5] == 0.0)
    assert np.any(heatmaps.numpy()[:, :, 5:] != 0.0)


def test_mask_derived_from_images_by_default():
    """Without fov_masks the heatmap is multiplied by field_of_view_mask(images)."""
    model = toy_model()
    images = _fundus_like()
    _, unmasked = sensitivity(model, tf.constant(images))
    _, heatmaps = compute(model, images)
    expected = unmasked.numpy() * field_of_view_mask(images).numpy()
    np.testing.assert_array_equal(heatmaps.numpy(), expected)
    assert 0 < np.count_nonzero(expected) < expected.size


@pytest.mark.parametrize(
    ("method", "rule", "options"),
    [
        ("guided_backprop", GUIDED, {}),
        ("deconvnet", DECONVNET, {}),
        ("lrp", lrp_epsilon(0.01), {"epsilon": 0.01}),
    ],
)
def test_engine_rule_methods_use_their_rule(method, rule, options):
    """Guided/deconvnet/LRP heatmaps are the engine's backward pass under their rule.

    Guided and deconvnet seed with 1 and reduce sum_c |signal|; LRP seeds the relevance with
    the grade and reduces |sum_c R|. The rules themselves are tested in backprop_test.py.
    """
    model = toy_model()
    images = tf.constant(_fundus_like(seed=1))
    outputs, trace = backprop.forward(model, images)
    if rule.is_lrp:
        expected = np.abs(backprop.backward(trace, outputs, rule).numpy().sum(axis=-1))
    else:
        expected = np.abs(backprop.backward(trace, tf.ones_like(outputs), rule).numpy()).sum(-1)
    ones = np.ones((2, 16, 16), np.float32)
    _, heatmaps = compute(model, images, method, ones, **options)
    np.testing.assert_allclose(heatmaps.numpy(), expected, rtol=1e-6, atol=1e-12)
    _, gradient_map = compute(model, images, "sensitivity", ones)
    assert not np.allclose(heatmaps.numpy(), gradient_map.numpy())


def test_tf_function_with_unknown_batch_matches_eager():
    """compute inside tf.function (batch None) equals eager, for 1 and 3 images."""
    model = toy_model()
    graph = tf.function(
        lambda images: compute(model, images, "sensitivity"),
        input_signature=[tf.TensorSpec((None, 16, 16, 3), tf.float32)],
    )
    for count in (1, 3):
        images = _fundus_like(count, seed=count)
        eager_scores, eager_maps = compute(model, images)
        graph_scores, graph_maps = graph(images)
        np.testing.assert_allclose(graph_scores.numpy(), eager_scores.numpy(), rtol=1e-6)
        np.testing.assert_allclose(graph_maps.numpy(), eager_maps.numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "smoothgrad", "lrp"])
def test_other_methods_trace_with_unknown_batch(method):
    """Every method builds inside tf.function with an unknown batch size."""
    model = toy_model()
    options = FAST_OPTIONS.get(method, {})
    graph = tf.function(
        lambda images: compute(model, images, method, **options),
        input_signature=[tf.TensorSpec((None, 16, 16, 3), tf.float32)],
    )
    images = _fundus_like(3, seed=5)
    expected = compute(model, images, method, **options)[1].numpy()
    np.testing.assert_allclose(graph(images)[1].numpy(), expected, atol=1e-5 * expected.max())


def test_unknown_method_and_option():
    """Unknown names list what exists."""
    model = toy_model()
    images = _fundus_like()
    with pytest.raises(ValueError, match="unknown heatmap method 'occlusion'; methods: sens"):
        compute(model, images, "occlusion")
    with pytest.raises(ValueError, match=r"no option\(s\) \['steps'\].*reduction"):
        compute(model, images, "sensitivity", steps=3)
    assert method_options("integrated_gradients") == (
        "steps", "points_per_batch", "sign", "training",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (np.zeros((16, 16, 3), np.float32), ValueError, "shape"),
        (np.zeros((1, 16, 16, 1), np.float32), ValueError, "channels"),
        (np.zeros((1, 16, 16, 3), np.uint8), TypeError, "floating point"),
        (np.zeros((1, 12, 16, 3), np.float32), ValueError, "height 12"),
        (np.full((1, 16, 16, 3), np.nan, np.float32), ValueError, "NaN"),
    ],
)
def test_bad_images(images, error, message):
    """Wrong rank, channels, dtype, size or NaN pixels give a clear error."""
    with pytest.raises(error, match=message):
        compute(toy_model(), images)


def test_bad_masks():
    """Masks must be (N, H, W) like the images."""
    with pytest.raises(ValueError, match="fov_masks must be"):
        compute(toy_model(), _fundus_like(), fov_masks=np.ones((2, 16, 16, 1), np.float32))
