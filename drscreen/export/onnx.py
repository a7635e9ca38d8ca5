"""ONNX conversion of the float signature with tf2onnx, checked for unsupported ops.

Owns converting ``predict_float`` (float32 ``images`` -> ``score``, ``grade``, ``heatmap``)
to an ONNX model and verifying that every node is a standard ONNX operator: tf2onnx writes
a model even when it cannot convert an op (it leaves the TensorFlow op in the graph), so
the check is what makes a broken export fail here instead of in onnxruntime. Must not run
models.
"""

import dataclasses

import onnx
import tensorflow as tf
import tf2onnx

from drscreen.export.signatures import ScreeningFunctions

DEFAULT_OPSET = 17
FILE_NAME = "drscreen.onnx"


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """A converted model and what the export description records about it.

    Attributes
    ----------
    model:
        The ONNX `ModelProto`.
    opset:
        The default-domain opset it was converted for.
    inputs, outputs:
        Names of the graph inputs and outputs.
    """

    model: onnx.ModelProto
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """``domain:op_type`` of every node that is not a registered ONNX operator, sorted."""
    return sorted(
        {
            f"{node.domain or 'ai.onnx'}:{node.op_type}"
            for node in model.graph.node
            if not onnx.defs.has(node.op_type, node.domain)
        }
    )


def convert(functions: ScreeningFunctions, opset: int = DEFAULT_OPSET) -> OnnxExport:
    """Convert the float signature (score, grade and heatmap) to ONNX.

    Raises
    ------
    RuntimeError
        If the converted graph holds ops that are not standard ONNX operators, naming them.
    """
    spec = functions.float_spec()
    function = tf.function(functions.predict, input_signature=[spec])
    model, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    bad = unsupported_ops(model)
    if bad:
        raise RuntimeError(f"ONNX opset {opset} conversion left unsupported ops: {bad}")
    onnx.checker.check_model(model)
    return OnnxExport(
        model=model,
        opset=opset,
        inputs=tuple(value.name for value in model.graph.input),
        outputs=tuple(value.name for value in model.graph.output),
    )
