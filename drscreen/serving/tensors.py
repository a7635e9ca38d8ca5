"""Tensor encodings of TensorFlow Serving's APIs: TensorProto for gRPC, JSON for REST.

Owns the conversions between numpy arrays and the wire formats, exactly as TensorFlow
Serving documents them: `TensorProto` through `tf.make_tensor_proto` / `tf.make_ndarray`, the
REST request formats row (``"instances"``) and columnar (``"inputs"``), the ``{"b64": ...}``
encoding of binary strings, and the response formats ``"predictions"`` / ``"outputs"``.

A request's inputs are handed on as `DeclaredTensor`: the dtype and shape the request
declares, read without touching the values, and a function that materialises them. A
`TensorProto` must carry exactly as many values as its shape declares (``tf.make_ndarray``
would repeat the last value to fill a larger shape: 52 bytes could declare 805 MB), so the
caller can refuse a shape before any memory is spent on it.
Knows nothing about models or signatures beyond the input dtypes it is given.
"""

import base64
import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from drscreen.serving.errors import ServingError

DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class DeclaredTensor:
    """An input as a request declares it, before its values are materialised.

    Attributes
    ----------
    dtype:
        The declared dtype (for JSON: the signature's, which the values are read as).
    shape:
        The declared shape (for JSON: the lengths of the nested lists along their first
        elements).
    materialise:
        Returns the values as an array of ``dtype`` (strings: an object array of ``bytes``);
        raises `ServingError` (``INVALID_ARGUMENT``) naming the input if they do not fit.
    """

    dtype: tf.DType
    shape: tuple[int, ...]
    materialise: Callable[[], np.ndarray]


# The TensorProto field holding the values of each dtype, and how many entries make a value.
_VALUE_FIELDS = {
    tf.float32: ("float_val", 1),
    tf.float64: ("double_val", 1),
    tf.float16: ("half_val", 1),
    tf.bfloat16: ("half_val", 1),
    tf.int8: ("int_val", 1),
    tf.int16: ("int_val", 1),
    tf.int32: ("int_val", 1),
    tf.uint8: ("int_val", 1),
    tf.uint16: ("int_val", 1),
    tf.int64: ("int64_val", 1),
    tf.uint32: ("uint32_val", 1),
    tf.uint64: ("uint64_val", 1),
    tf.bool: ("bool_val", 1),
    tf.complex64: ("scomplex_val", 2),
    tf.complex128: ("dcomplex_val", 2),
    tf.string: ("string_val", 1),
}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode a numpy array (numeric, or object/bytes for strings) as a `TensorProto`."""
    return tf.make_tensor_proto(array)


def proto_tensor(proto: tensor_pb2.TensorProto, name: str) -> DeclaredTensor:
    """The dtype and shape ``proto`` declares, checked against the values it carries.

    Reads only the proto's header fields and the lengths of its value fields.

    Raises
    ------
    ServingError
        ``INVALID_ARGUMENT`` naming the tensor for an unknown or unsupported dtype, an unknown
        rank, a negative dimension, or a number of values other than the shape's.
    """
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError as error:
        raise _invalid(f"input '{name}': unknown dtype enum {proto.dtype}") from error
    if dtype not in _VALUE_FIELDS:
        raise _invalid(f"input '{name}': dtype {dtype.name} is not supported in a request")
    if proto.tensor_shape.unknown_rank:
        raise _invalid(f"input '{name}': a request tensor must declare its shape")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise _invalid(f"input '{name}': shape {list(shape)} has a negative dimension")
    elements = math.prod(shape)
    field, entries_per_value = _VALUE_FIELDS[dtype]
    if proto.tensor_content and dtype != tf.string:
        carried, unit = len(proto.tensor_content), f"bytes of tensor_content ({dtype.size} each)"
        expected = elements * dtype.size
    else:
        carried, unit = len(getattr(proto, field)), field
        expected = elements * entries_per_value
    if carried != expected:
        raise _invalid(
            f"input '{name}': shape {list(shape)} holds {elements} values but the tensor"
            f" carries {carried} {unit}; send exactly one value per element"
        )
    return DeclaredTensor(dtype, shape, lambda: to_ndarray(proto, name))


def to_ndarray(proto: tensor_pb2.TensorProto, name: str) -> np.ndarray:
    """Decode a `TensorProto`; strings come back as an object array of ``bytes``.

    Raises
    ------
    ServingError
        ``INVALID_ARGUMENT`` naming the tensor when the proto is malformed or its values do
        not fill its shape exactly.
    """
    proto_tensor(proto, name)
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError) as error:
        raise _invalid(f"input '{name}': malformed TensorProto ({error})") from error


def json_tensor(value: Any, dtype: np.dtype, name: str) -> DeclaredTensor:
    """A JSON value (nested lists) as the tensor it declares; `json_to_array` materialises it."""
    shape = []
    leaf = value
    while isinstance(leaf, list):
        shape.append(len(leaf))
        if not leaf:
            break
        leaf = leaf[0]
    return DeclaredTensor(
        tf.dtypes.as_dtype(dtype), tuple(shape), lambda: json_to_array(value, dtype, name)
    )


def request_signature_name(body: Any) -> str:
    """The ``signature_name`` of a REST predict body (``serving_default`` when absent)."""
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise _invalid("'signature_name' must be a string")
    return name


def parse_predict_inputs(
    body: Mapping[str, Any], input_dtypes: Mapping[str, np.dtype]
) -> tuple[dict[str, DeclaredTensor], bool]:
    """Decode the inputs of a REST predict body in row or columnar format.

    Parameters
    ----------
    body:
        The parsed JSON request, holding exactly one of ``"instances"`` (row format: one
        entry per example, an object of named inputs when the signature has several) or
        ``"inputs"`` (columnar: one batched value, or an object of named batched values).
    input_dtypes:
        Input name to numpy dtype of the target signature (``object`` for strings).

    Returns
    -------
    inputs, row_format:
        Input name to its `DeclaredTensor` (not yet converted to an array), and whether the
        body used the row format (the response must then use ``"predictions"``, otherwise
        ``"outputs"``).
    """
    if ("instances" in body) == ("inputs" in body):
        raise _invalid("request body must hold exactly one of 'instances' or 'inputs'")
    if "instances" in body:
        return _parse_rows(body["instances"], input_dtypes), True
    return _parse_columns(body["inputs"], input_dtypes), False


def json_to_array(value: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """Convert a JSON value (nested lists) to an array of ``dtype``.

    For strings (``dtype`` object) a leaf is either a text string (UTF-8 encoded) or
    ``{"b64": "<base64>"}`` (binary). A number leaf must be a JSON number of the dtype's kind:
    ``null``, ``true`` and ``false`` are not floats, as TensorFlow Serving answers ("Type: Null
    is not of expected type: float"). Ragged lists, lists nested deeper than numpy's 64
    dimensions and values of the wrong type raise ``INVALID_ARGUMENT`` naming the tensor.
    Numbers are converted straight from the lists, without an intermediate array of objects.
    """
    dtype = np.dtype(dtype)
    if dtype == np.dtype(object):
        return _json_to_strings(value, name)
    kinds = _leaf_types(value, name)
    wrong = kinds - _JSON_KINDS.get(dtype.kind, set())
    if wrong:
        found = _JSON_TYPE_NAMES.get(min(wrong, key=str), "Value")
        raise _invalid(f"input '{name}': Type: {found} is not of expected type: {dtype.name}")
    try:
        with np.errstate(over="ignore"):
            return np.array(value, dtype=dtype)
    except ValueError as error:  # lists of different lengths
        raise _ragged(name) from error
    except (OverflowError, TypeError) as error:
        raise _invalid(
            f"input '{name}': cannot read the JSON value as {dtype.name} ({error})"
        ) from error


def _leaf_types(value: Any, name: str) -> set[type]:
    """Types of the leaves of nested lists, as deep as the first element's nesting."""
    leaves, probe, depth = iter([value]), value, 0
    while isinstance(probe, list):
        leaves, depth = itertools.chain.from_iterable(leaves), depth + 1
        if depth > _MAX_DIMENSIONS:
            raise _ragged(name)
        if not probe:
            break
        probe = probe[0]
    try:
        kinds = set(map(type, leaves))
    except TypeError as error:  # a number where the first element nests a list
        raise _ragged(name) from error
    if list in kinds:
        raise _ragged(name)
    return kinds


def _json_to_strings(value: Any, name: str) -> np.ndarray:
    try:
        leaves = np.asarray(value, dtype=object)
    except ValueError as error:
        raise _invalid(f"input '{name}': not a rectangular tensor ({error})") from error
    flat = leaves.reshape(-1)  # a view: no copy of the leaves
    if any(isinstance(leaf, list) for leaf in flat):
        raise _ragged(name)
    array = np.empty(leaves.size, dtype=object)
    array[:] = [_string_leaf(leaf, name) for leaf in flat]
    return array.reshape(leaves.shape)


def _ragged(name: str) -> ServingError:
    return _invalid(
        f"input '{name}': ragged nested lists, or nested deeper than {_MAX_DIMENSIONS} levels,"
        " are not a tensor"
    )


_MAX_DIMENSIONS = 64  # numpy's
# The JSON leaf types (as Python decodes them) accepted for each numpy dtype kind.
_JSON_KINDS = {"f": {int, float}, "c": {int, float}, "i": {int}, "u": {int}, "b": {bool}}
_JSON_TYPE_NAMES = {
    type(None): "Null",
    bool: "Bool",
    int: "Integer",
    float: "Number",
    str: "String",
    dict: "Object",
}


def format_predict_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
    """Build the REST predict response body from named output arrays.

    Row format answers ``{"predictions": [...]}`` with one entry per example (an object of
    named outputs when there are several); columnar answers ``{"outputs": value}`` or
    ``{"outputs": {name: value}}``. String outputs whose name ends in ``_bytes`` are
    base64-encoded as ``{"b64": ...}``, as TensorFlow Serving does.
    """
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _array_to_json(outputs[names[0]], names[0])}
        return {"outputs": {name: _array_to_json(outputs[name], name) for name in names}}
    batch_sizes = {outputs[name].shape[0] if outputs[name].ndim else None for name in names}
    if len(batch_sizes) != 1 or None in batch_sizes:
        raise _invalid(
            "outputs do not share one batch size, so they cannot be returned in the row"
            " ('instances') format; use the columnar ('inputs') format"
        )
    if len(names) == 1:
        return {"predictions": _array_to_json(outputs[names[0]], names[0])}
    columns = {name: _array_to_json(outputs[name], name) for name in names}
    (batch_size,) = batch_sizes
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(batch_size)]}


def _parse_rows(instances: Any, input_dtypes: Mapping[str, np.dtype]) -> dict[str, DeclaredTensor]:
    if not isinstance(instances, list) or not instances:
        raise _invalid("'instances' must be a non-empty list")
    named = [isinstance(row, dict) and not _is_b64(row) for row in instances]
    if any(named) and not all(named):
        raise _invalid("'instances' mixes objects of named inputs with plain values")
    if not all(named):
        name = _single_input(input_dtypes)
        return {name: json_tensor(instances, input_dtypes[name], name)}
    names = set(instances[0])
    for index, row in enumerate(instances):
        if set(row) != names:
            raise _invalid(
                f"instance {index} has inputs {sorted(row)} but instance 0 has {sorted(names)}"
            )
    return {
        name: json_tensor([row[name] for row in instances], _dtype_of(input_dtypes, name), name)
        for name in sorted(names)
    }


def _parse_columns(inputs: Any, input_dtypes: Mapping[str, np.dtype]) -> dict[str, DeclaredTensor]:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        return {
            name: json_tensor(value, _dtype_of(input_dtypes, name), name)
            for name, value in inputs.items()
        }
    name = _single_input(input_dtypes)
    return {name: json_tensor(inputs, input_dtypes[name], name)}


def _single_input(input_dtypes: Mapping[str, np.dtype]) -> str:
    if len(input_dtypes) != 1:
        raise _invalid(
            f"the signature has {len(input_dtypes)} inputs ({', '.join(sorted(input_dtypes))}):"
            " name each one"
        )
    return next(iter(input_dtypes))


def _dtype_of(input_dtypes: Mapping[str, np.dtype], name: str) -> np.dtype:
    if name not in input_dtypes:
        raise _invalid(
            f"input '{name}' is not an input of the signature (expected:"
            f" {', '.join(sorted(input_dtypes))})"
        )
    return input_dtypes[name]


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _string_leaf(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800"
            raise _invalid(
                f"input '{name}': string value is not valid Unicode ({error.reason} at"
                f' character {error.start}); send binary data as {{"b64": ...}}'
            ) from error
    if _is_b64(value) and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:  # binascii.Error, or characters outside ASCII
            raise _invalid(f"input '{name}': invalid base64 in 'b64' ({error})") from error
    raise _invalid(
        f"input '{name}' is a string tensor: each value must be a string or {{\"b64\": ...}},"
        f" got {type(value).__name__}"
    )


def _array_to_json(array: np.ndarray, name: str) -> Any:
    if array.dtype != np.dtype(object) and array.dtype.kind != "S":
        return array.tolist()
    encode = _b64_leaf if name.endswith("_bytes") else _text_leaf
    return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else array.tolist()


def _b64_leaf(value: bytes) -> dict:
    return {"b64": base64.b64encode(value).decode("ascii")}


def _text_leaf(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)
