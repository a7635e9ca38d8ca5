"""Weight-only int8: a float TFLite flatbuffer whose large weights are stored as int8.

Owns rewriting a converted float32 flatbuffer so that each large constant weight is an int8
tensor with one symmetric scale per channel (``scale = max |w| / 127``, zero point 0) read
by a ``DEQUANTIZE`` op, while every op still computes in float32. LiteRT's XNNPACK delegate
unpacks a ``DEQUANTIZE`` of a constant once, when it prepares the graph, so the file is
under a third of float32's (net A) and runs at float32's speed. Unlike the converter's
dynamic-range quantization, no activation is rounded: the only error is the weights'
rounding. Each constant is rounded on its own, so a backward convolution's kernel (the
forward kernel rearranged, `drscreen.layers.convolution.phase_kernel`) gets its own
per-channel scales; on the trained nets measured this gives the heatmap agreement of
rounding the Keras weights once (`bench/int8_layer_sensitivity.py`).

Weights, by the op that reads them:

- filters of ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and ``FULLY_CONNECTED`` (forward and
  backward convolutions, dense layers), scaled per output channel;
- constant operands of ``ADD`` (the o_O nets' untied biases, one value per position and
  channel, a third of net A's parameters), scaled per channel (last axis).

Tensors under `MIN_ELEMENTS` stay float32. In these networks channels grow with depth, so
that keeps the first convolutions (forward and backward) float: the small weights whose
rounding moves the heatmap most on trained nets, while the deeper layers, which hold almost
all the weights, are harmless to round (`bench/int8_layer_sensitivity.py`). Net A's untied
biases (millions of values in its first layers) are int8 above the threshold: rounding
every bias alone keeps the trained net A's heatmap at r >= 0.99.
Must not convert or run models.
"""

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

MIN_ELEMENTS = 131072
"""Weights with fewer elements stay float32 (512 KB each at most): net A's first six
convolution kernels (2.5 MB of its 23.6 MB file), almost all of the small network. Chosen on
a trained net A's heatmap agreement with float32 (no labels, no lesion masks), smallest
per-image r on two sets of synthetic photographs: 32,768 elements 0.982 / 0.984 (file 0.256 of
float32's), 65,536 0.991 / 0.989 (0.268), 131,072 0.992 / 0.991 (0.286)."""

_OPS = schema.BuiltinOperator
_FILTERS = {  # op -> (filter input, channel axis)
    _OPS.CONV_2D: (1, 0),
    _OPS.DEPTHWISE_CONV_2D: (1, 3),
    _OPS.FULLY_CONNECTED: (1, 0),
}
_INT8_MAX = 127


def symmetric_int8(weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and float32 scales (one per index of ``axis``) with ``q * scale ~ w``.

    ``scale = max |w| / 127`` over each channel (1 for an all-zero channel), ``q`` the
    rounded ratio, so the largest weight of each channel is exact.
    """
    reduced = tuple(i for i in range(weights.ndim) if i != axis)
    scales = (np.abs(weights).max(axis=reduced) / _INT8_MAX).astype(np.float32)
    scales[scales == 0] = 1.0
    shape = [1] * weights.ndim
    shape[axis] = -1
    values = np.round(weights / scales.reshape(shape))
    return np.clip(values, -_INT8_MAX, _INT8_MAX).astype(np.int8), scales


def _builtin(model, operator) -> int:
    code = model.operatorCodes[operator.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _dequantize_opcode(model) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == _OPS.DEQUANTIZE:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = _OPS.DEQUANTIZE
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _weight_inputs(model, subgraph, min_elements: int) -> dict[int, int]:
    """Tensor index -> channel axis of every large constant float32 weight of ``subgraph``."""
    found = {}
    for operator in subgraph.operators:
        builtin = _builtin(model, operator)
        if builtin in _FILTERS:
            position, axis = _FILTERS[builtin]
            candidates = [(operator.inputs[position], axis)]
        elif builtin == _OPS.ADD:
            candidates = [(index, -1) for index in operator.inputs]
        else:
            continue
        for index, axis in candidates:
            tensor = subgraph.tensors[index]
            data = model.buffers[tensor.buffer].data
            if tensor.type == schema.TensorType.FLOAT32 and data is not None:
                if len(data) >= 4 * min_elements:
                    found[index] = axis % len(tensor.shape)
    return found


def quantize_weights(flatbuffer: bytes, min_elements: int = MIN_ELEMENTS) -> bytes:
    """``flatbuffer`` with its large weights stored int8 per channel, read by DEQUANTIZE.

    Every subgraph (signature) is rewritten; a weight buffer shared by several signatures
    is quantized once and stays shared. Inputs, outputs and every op's arithmetic stay
    float32.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    dequantize = _dequantize_opcode(model)
    quantized = {}  # (float buffer, axis) -> (int8 buffer, scales)
    for subgraph in model.subgraphs:
        unpack = []
        for index, axis in _weight_inputs(model, subgraph, min_elements).items():
            tensor = subgraph.tensors[index]
            key = (tensor.buffer, axis)
            if key not in quantized:
                weights = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32)
                values, scales = symmetric_int8(weights.reshape(tensor.shape), axis)
                buffer = schema.BufferT()
                buffer.data = values.tobytes()
                model.buffers.append(buffer)
                quantized[key] = (len(model.buffers) - 1, scales)
            buffer_index, scales = quantized[key]
            stored = schema.TensorT()
            stored.name, stored.shape = tensor.name + b"_int8", list(tensor.shape)
            stored.type, stored.buffer = schema.TensorType.INT8, buffer_index
            stored.quantization = schema.QuantizationParametersT()
            stored.quantization.scale = scales.tolist()
            stored.quantization.zeroPoint = [0] * len(scales)
            stored.quantization.quantizedDimension = axis
            subgraph.tensors.append(stored)
            tensor.buffer = 0  # the float tensor is now DEQUANTIZE's output
            operator = schema.OperatorT()
            operator.opcodeIndex = dequantize
            operator.inputs, operator.outputs = [len(subgraph.tensors) - 1], [index]
            unpack.append(operator)
        subgraph.operators = unpack + subgraph.operators
    referenced = {tensor.buffer for subgraph in model.subgraphs for tensor in subgraph.tensors}
    for index, buffer in enumerate(model.buffers):
        if index not in referenced:
            buffer.data = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
