"""The request path shared by the gRPC and REST front ends: resolve, validate, run.

Owns what happens between a decoded request and its outputs: resolving the model name and
version, checking the signature name and every input's name, dtype and shape against the
`SignatureDef` (and float values against the range the export declares) before anything
runs, running the signature (through the `Batcher` when batching is on), and turning
TensorFlow's runtime errors (e.g. a corrupt JPEG inside the graph) into ``INVALID_ARGUMENT``
naming the batch element that failed. Knows nothing about wire formats.
"""

import dataclasses
import re
from collections.abc import Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from drscreen.serving.batching import Batcher, BatchingConfig
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import InputRange, ModelStore, ModelVersion, VersionStatus

PREDICT_METHOD = "tensorflow/serving/predict"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Outputs of one predict call and the version and signature that produced them."""

    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


class Predictor:
    """Answers predict, metadata and status requests for the model of a `ModelStore`.

    Parameters
    ----------
    store:
        The started model store.
    batching:
        Batching parameters, or ``None`` to run every request on its own.
    """

    def __init__(self, store: ModelStore, batching: BatchingConfig | None):
        self.store = store
        self._batcher = Batcher(batching) if batching is not None else None

    def close(self) -> None:
        """Finish queued batches and stop the batch threads."""
        if self._batcher is not None:
            self._batcher.close()

    def resolve(self, model_name: str, version: int | None) -> ModelVersion:
        """The served version of ``model_name`` (``NOT_FOUND`` if unknown or not served)."""
        if model_name != self.store.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{model_name}' is not served here (serving: '{self.store.name}')",
            )
        return self.store.get(version)

    def status(self, model_name: str, version: int | None) -> list[VersionStatus]:
        """Version states of ``model_name`` (``NOT_FOUND`` if unknown)."""
        if model_name != self.store.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{model_name}' is not served here (serving: '{self.store.name}')",
            )
        return self.store.statuses(version)

    def signature(self, model: ModelVersion, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """The predict `SignatureDef` named ``signature_name`` (``INVALID_ARGUMENT`` if none)."""
        callable_names = sorted(
            name
            for name, signature in model.signature_defs.items()
            if name in model.functions and signature.method_name == PREDICT_METHOD
        )
        if signature_name not in callable_names:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"signature '{signature_name}' not found in model '{self.store.name}' version"
                f" {model.version} (signatures: {', '.join(callable_names)})",
            )
        return model.signature_defs[signature_name]

    def predict(
        self,
        model_name: str,
        version: int | None,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> Prediction:
        """Validate ``inputs`` against the signature, run it, and return its outputs.

        Parameters
        ----------
        model_name, version:
            The servable; ``version`` ``None`` means the served (newest) one.
        signature_name:
            A predict signature of the SavedModel.
        inputs:
            Input name to array (strings as object arrays of ``bytes``).
        output_filter:
            Output names to return; empty returns all of them.

        Raises
        ------
        ServingError
            ``NOT_FOUND`` for an unknown model or version, ``INVALID_ARGUMENT`` for a wrong
            signature, input name, dtype, shape, output filter or undecodable input.
        """
        model = self.resolve(model_name, version)
        signature = self.signature(model, signature_name)
        arrays = validate_inputs(signature, signature_name, inputs, model.input_range)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names {unknown} not in signature '{signature_name}' (outputs:"
                f" {', '.join(sorted(signature.outputs))})",
            )
        function = model.functions[signature_name]

        def run(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return _run_signature(function, signature_name, batch)

        try:
            if self._batcher is None:
                outputs = run(arrays)
            else:
                outputs = self._batcher.submit((model.version, signature_name), run, arrays)
        except _Rejected as error:
            raise _name_failed_element(run, arrays, signature_name, error) from error
        if output_filter:
            outputs = {name: outputs[name] for name in output_filter}
        return Prediction(model.version, signature_name, outputs)


def validate_inputs(
    signature: meta_graph_pb2.SignatureDef,
    signature_name: str,
    inputs: Mapping[str, np.ndarray],
    input_range: InputRange | None = None,
) -> dict[str, np.ndarray]:
    """Check names, dtypes and shapes of ``inputs`` against ``signature``.

    Returns the inputs as arrays (strings as object arrays of ``bytes``); dtypes must match
    exactly, as TensorFlow Serving requires. A float input named by ``input_range`` must hold
    finite values within it (TensorFlow Serving does not check values).

    Raises
    ------
    ServingError
        ``INVALID_ARGUMENT`` naming the input and the reason.
    """
    expected = sorted(signature.inputs)
    if sorted(inputs) != expected:
        extra = sorted(set(inputs) - set(expected))
        missing = sorted(set(expected) - set(inputs))
        raise _invalid(
            f"signature '{signature_name}' takes inputs {expected}; got unexpected {extra} and"
            f" missing {missing}"
        )
    arrays = {}
    batch_sizes = set()
    for name in expected:
        info = signature.inputs[name]
        dtype = tf.dtypes.as_dtype(info.dtype)
        array = np.asarray(inputs[name])
        arrays[name] = _cast(array, dtype, signature_name, name)
        _check_shape(arrays[name].shape, info, signature_name, name)
        batch_sizes.add(arrays[name].shape[0] if arrays[name].ndim else None)
    if len(batch_sizes) > 1:
        raise _invalid(f"inputs of signature '{signature_name}' differ in batch size")
    if 0 in batch_sizes:
        raise _invalid(f"inputs of signature '{signature_name}' hold an empty batch")
    if input_range is not None and input_range.name in arrays:
        _check_range(arrays[input_range.name], input_range, signature_name)
    return arrays


def _check_range(array: np.ndarray, allowed: InputRange, signature_name: str) -> None:
    if array.dtype.kind != "f" or array.ndim == 0:
        return
    per_element = array.reshape(len(array), -1)
    finite = np.isfinite(per_element).all(axis=1)
    inside = finite & (per_element.min(axis=1, initial=allowed.low) >= allowed.low)
    inside &= per_element.max(axis=1, initial=allowed.high) <= allowed.high
    if inside.all():
        return
    index = int(np.argmin(inside))
    values = per_element[index]
    problem = (
        "NaN or infinite values"
        if not finite[index]
        else f"values from {values.min():g} to {values.max():g}"
    )
    raise _invalid(
        f"input '{allowed.name}' of signature '{signature_name}', element {index}: {problem};"
        f" pixel values must lie in [{allowed.low:g}, {allowed.high:g}]"
    )


def _cast(array: np.ndarray, dtype: tf.DType, signature_name: str, name: str) -> np.ndarray:
    if dtype == tf.string:
        if array.dtype.kind in "OS" and all(isinstance(v, bytes) for v in array.flat):
            return array.astype(object)
    elif array.dtype == np.dtype(dtype.as_numpy_dtype):
        return array
    raise _invalid(
        f"input '{name}' of signature '{signature_name}' must be {dtype.name}, got"
        f" {_dtype_name(array)}"
    )


def _dtype_name(array: np.ndarray) -> str:
    return "string" if array.dtype.kind in "OSU" else array.dtype.name


def _check_shape(shape: tuple[int, ...], info, signature_name: str, name: str) -> None:
    if info.tensor_shape.unknown_rank:
        return
    expected = [dim.size for dim in info.tensor_shape.dim]
    matches = len(shape) == len(expected) and all(
        want < 0 or want == got for want, got in zip(expected, shape, strict=True)
    )
    if not matches:
        wanted = "(" + ", ".join("None" if d < 0 else str(d) for d in expected) + ")"
        raise _invalid(
            f"input '{name}' of signature '{signature_name}' must have shape {wanted}, got"
            f" {tuple(shape)}"
        )


_TF_NODE_TRACE = re.compile(r"\s*(\[\[|\[Op:).*$", re.DOTALL)
_TF_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_TF_ASSERTION = re.compile(r"^assertion failed: \[(?P<reason>.*)\]$", re.DOTALL)


class _Rejected(ServingError):
    """The signature raised InvalidArgumentError on its inputs; ``reason`` is TensorFlow's."""

    def __init__(self, signature_name: str, reason: str):
        super().__init__(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"signature '{signature_name}' rejected its inputs: {reason}",
        )
        self.reason = reason


def _name_failed_element(
    run, arrays: Mapping[str, np.ndarray], signature_name: str, error: _Rejected
) -> ServingError:
    """The error of the first batch element that fails alone (the batch's error if none)."""
    size = len(next(iter(arrays.values())))
    if size == 1:
        return _invalid(f"signature '{signature_name}' rejected element 0 of 1: {error.reason}")
    for index in range(size):
        try:
            run({name: value[index : index + 1] for name, value in arrays.items()})
        except _Rejected as element_error:
            return _invalid(
                f"signature '{signature_name}' rejected element {index} of {size}:"
                f" {element_error.reason}"
            )
    return error


def _run_signature(
    function, signature_name: str, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    try:
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
    except tf.errors.InvalidArgumentError as error:
        raise _Rejected(signature_name, _tf_reason(error.message)) from error
    except tf.errors.OpError as error:
        raise ServingError(
            grpc.StatusCode.INTERNAL, f"signature '{signature_name}' failed: {error.message}"
        ) from error
    return {name: value.numpy() for name, value in outputs.items()}


def _tf_reason(message: str) -> str:
    """The last line of a TensorFlow error before its node trace (the actual reason); the
    message of a failed in-graph check (``tf.debugging.Assert``) alone."""
    lines = [line.strip() for line in _TF_NODE_TRACE.sub("", message).splitlines()]
    reason = _TF_FUNCTION_NODE.sub("", next((line for line in reversed(lines) if line), message))
    assertion = _TF_ASSERTION.match(reason)
    return assertion["reason"] if assertion else reason


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)
