"""ONNX conversion of the float signature with tf2onnx, checked for unsupported ops.

Owns converting ``predict_float`` (float32 ``images`` -> ``score``, ``grade``, ``heatmap``,
``quality``, ``lesions``) to an ONNX model and verifying that every node is a standard ONNX
operator: tf2onnx writes a model even when it cannot convert an op (it leaves the
TensorFlow op in the graph), so the check is what makes a broken export fail here instead of
in onnxruntime. tf2onnx also turns every constant the traced function captured from outside
(a Keras ``Normalization`` layer's mean and variance are eager tensors, not variables) into
a graph input a caller would have to feed; `convert` stores them as initializers instead, so
``images`` stays the only input. Must not run models.
"""

import dataclasses

import numpy as np
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


def captured_constants(function: tf.types.experimental.ConcreteFunction) -> dict[str, np.ndarray]:
    """The values of the non-variable tensors a traced function captured, by the name of
    the placeholder standing for each inside its graph."""
    return {
        internal.name: external.numpy()
        for external, internal in function.graph.captures
        if external.dtype != tf.resource
    }


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a node of ``graph`` or of its subgraphs (If, Loop bodies) reads."""
    read = set()
    for node in graph.node:
        read.update(node.input)
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                read |= _names_read(subgraph)
    return read


def fold_inputs(model: onnx.ModelProto, constants: dict[str, np.ndarray]) -> None:
    """Turn the graph inputs named in ``constants`` into initializers holding their values
    (dropped instead when no node reads them: tf2onnx may have folded them already)."""
    read = _names_read(model.graph)
    for value in [value for value in model.graph.input if value.name in constants]:
        if value.name in read:
            model.graph.initializer.append(
                onnx.numpy_helper.from_array(constants[value.name], value.name)
            )
        model.graph.input.remove(value)


def convert(functions: ScreeningFunctions, opset: int = DEFAULT_OPSET) -> OnnxExport:
    """Convert the float signature (score, grade, heatmap, quality, lesions) to ONNX.

    Raises
    ------
    RuntimeError
        If the converted graph holds ops that are not standard ONNX operators, naming them.
    """
    spec = functions.float_spec()
    function = tf.function(functions.predict, input_signature=[spec])
    model, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    fold_inputs(model, captured_constants(function.get_concrete_function(spec)))
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
