"""The ONNX export through onnxruntime vs TensorFlow."""

import os

import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf

from drscreen.export import onnx as onnx_export
from drscreen.export import read_description

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")


def test_onnx_matches_tensorflow(exported, photographs):
    """score, grade, heatmap and quality of onnxruntime equal predict_float's."""
    _, images, _ = photographs
    description = read_description(exported.path)["formats"]["onnx"]
    assert description["opset"] == onnx_export.DEFAULT_OPSET
    path = os.path.join(exported.path, description["file"])
    model = onnx.load(path)
    assert onnx_export.unsupported_ops(model) == []
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"images": images}), strict=True))
    expected = tf.saved_model.load(exported.path).signatures["predict_float"](
        images=tf.constant(images)
    )
    assert sorted(outputs) == ["grade", "heatmap", "lesions", "quality", "score"]
    for name in outputs:
        reference = expected[name].numpy()
        scale = max(1.0, float(np.abs(reference).max()))
        np.testing.assert_allclose(outputs[name], reference, atol=1e-5 * scale)


def test_unsupported_ops_names_non_onnx_nodes():
    """A TensorFlow op left in the graph (as tf2onnx does) is reported by domain and type."""
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Relu", ["x"], ["y"]),
            onnx.helper.make_node("MaxPoolGrad", ["y"], ["z"]),
        ],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1])],
    )
    assert onnx_export.unsupported_ops(onnx.helper.make_model(graph)) == ["ai.onnx:MaxPoolGrad"]
