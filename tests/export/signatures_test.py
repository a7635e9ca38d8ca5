"""The exported functions: heatmap pooling, calibration, validation, portable ops."""

import numpy as np
import pytest
import tensorflow as tf

from drscreen.export import ScreeningFunctions, SignatureConfig
from drscreen.heatmaps import compute
from drscreen.models.calibration import Calibration

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")


def test_heatmap_size_average_pools(model, photographs):
    """heatmap_size=16 on 64 px inputs is the 4x4 block mean of the full heatmap."""
    _, images, _ = photographs
    full = ScreeningFunctions(model, SignatureConfig()).predict(tf.constant(images))
    small = ScreeningFunctions(model, SignatureConfig(heatmap_size=16)).predict(tf.constant(images))
    blocks = full["heatmap"].numpy().reshape(3, 16, 4, 16, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(small["heatmap"].numpy(), blocks, rtol=1e-5, atol=1e-12)


def test_calibration_sets_the_score(model, photographs):
    """score = sigmoid((grade - midpoint) / scale) with the configured calibration."""
    _, images, _ = photographs
    config = SignatureConfig(calibration=Calibration(midpoint=0.0, scale=2.0))
    outputs = ScreeningFunctions(model, config).score(tf.constant(images))
    grade = outputs["grade"].numpy().astype(np.float64)
    np.testing.assert_allclose(outputs["score"].numpy(), 1 / (1 + np.exp(-grade / 2.0)), atol=1e-6)


def test_invalid_configs_are_refused(model):
    """Unknown method, non-dividing heatmap size, non-positive scale."""
    with pytest.raises(ValueError, match="heatmap_method"):
        SignatureConfig(heatmap_method="saliency")
    with pytest.raises(ValueError, match="must divide the model input size 64"):
        ScreeningFunctions(model, SignatureConfig(heatmap_size=48))
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        SignatureConfig(calibration=Calibration(scale=0.0))


def test_serving_default_honours_the_pixel_limit(model, photographs):
    """max_image_pixels below a photograph's size refuses it in-graph, by its header."""
    encoded, _, _ = photographs
    functions = ScreeningFunctions(model, SignatureConfig(max_image_pixels=1000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="above the limit of 1000"):
        functions.predict_bytes(tf.constant(encoded[:1]))
    with pytest.raises(ValueError, match="max_image_pixels must be positive"):
        SignatureConfig(max_image_pixels=0)


def _op_types(function: tf.types.experimental.ConcreteFunction) -> set[str]:
    """Every op type of a traced function, nested function bodies included."""
    graph = function.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return {node.op for node in nodes}


def test_exported_heatmap_is_portable_and_equals_the_in_process_one(model, photographs):
    """The exported graph has neither TensorFlow's fused MaxPoolGrad / LeakyReluGrad /
    Conv2DBackpropInput nor bool morphology (its FOV mask and backward are float ops XNNPACK
    runs), and gives the heatmap that in-process TensorFlow computes with them, on
    photographs with black borders (ties in every pooling window there)."""
    _, images, _ = photographs
    functions = ScreeningFunctions(model, SignatureConfig())
    exported = tf.function(functions.predict).get_concrete_function(functions.float_spec())
    in_process = tf.function(lambda x: compute(model, x)).get_concrete_function(
        functions.float_spec()
    )
    fused = {"MaxPoolGrad", "LeakyReluGrad", "Conv2DBackpropInput", "LogicalAnd", "LogicalOr"}
    assert fused <= _op_types(in_process)
    assert not fused & _op_types(exported)
    grade, heatmap = in_process(tf.constant(images))
    outputs = exported(tf.constant(images))
    np.testing.assert_array_equal(outputs["grade"].numpy(), grade.numpy())
    scale = np.abs(heatmap.numpy()).max()
    assert scale > 0
    np.testing.assert_allclose(outputs["heatmap"].numpy(), heatmap.numpy(), atol=1e-6 * scale)
