"""The request path shared by the gRPC and REST front ends: resolve, validate, run.

Owns what happens between a decoded request and its outputs: resolving the model name and
version, checking the signature name and every input's name, dtype and shape, and the batch
against ``max_batch_size``, from what the request *declares* (`DeclaredTensor`) before any
value is materialised, then the values (float values against the range the export declares),
running the signature (through the `Batcher` when batching is on), and turning TensorFlow's
runtime errors (e.g. a corrupt JPEG inside the graph) into ``INVALID_ARGUMENT`` naming the
batch element that failed.

Memory and CPU are bounded by compute slots: decoding a request (a REST body from its parse to
its arrays, a TensorProto's values) and each run of a signature (which decodes the
photographs) hold one, so however many clients send large requests at once, at most
``compute_slots`` are being decoded or run; requests over 8 MiB are decoded at most
``compute_slots - 1`` at a time, so they never queue the small ones behind them. A decode or
run that grew the process hands the memory back when it ends (`memory.returned_after`).
Knows nothing about wire formats.
"""

import contextlib
import dataclasses
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from drscreen.serving import memory
from drscreen.serving.batching import Batcher, BatchingConfig
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import InputRange, ModelStore, ModelVersion, VersionStatus
from drscreen.serving.tensors import DeclaredTensor

T = TypeVar("T")
PREDICT_METHOD = "tensorflow/serving/predict"
LARGE_REQUEST_BYTES = 8 * 2**20


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Outputs of one predict call and the version and signature that produced them."""

    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


def default_compute_slots() -> int:
    """The CPU cores this process may use: more concurrent decodes only add memory."""
    return len(os.sched_getaffinity(0))


class Predictor:
    """Answers predict, metadata and status requests for the model of a `ModelStore`.

    Parameters
    ----------
    store:
        The started model store.
    batching:
        Batching parameters, or ``None`` to run every request on its own.
    max_batch_size:
        Most examples (the first dimension of the inputs) one request may hold.
    compute_slots:
        Requests decoded or run at once (default: `default_compute_slots`).
    """

    def __init__(
        self,
        store: ModelStore,
        batching: BatchingConfig | None,
        max_batch_size: int = 64,
        compute_slots: int | None = None,
    ):
        self.store = store
        self.max_batch_size = max_batch_size
        self._batcher = Batcher(batching) if batching is not None else None
        slots = compute_slots or default_compute_slots()
        self._slots = threading.BoundedSemaphore(slots)
        self._large_slots = threading.BoundedSemaphore(max(1, slots - 1))

    def close(self, timeout: float | None = None) -> None:
        """Finish queued batches (waiting up to ``timeout`` seconds) and stop the batch
        threads."""
        if self._batcher is not None:
            self._batcher.close(timeout)

    def decode_in_slot(self, request_bytes: int, decode: Callable[[], T]) -> T:
        """Run ``decode`` (which turns a request into arrays) holding a compute slot.

        A request of more than `LARGE_REQUEST_BYTES` also takes one of ``compute_slots - 1``
        large slots first, so large requests never hold every slot: small ones are not queued
        behind a 64 MB body's parse. What ``decode`` dropped (a parsed body, the arrays of a
        refused request) is freed before the slot is released, and handed back to the system
        if it was large: a refusal is raised afresh, without the traceback that would keep
        ``decode``'s frames alive.
        """
        large = request_bytes > LARGE_REQUEST_BYTES
        with self._large_slots if large else contextlib.nullcontext():
            with self._slots, memory.returned_after(large):
                try:
                    return decode()
                except ServingError as error:
                    refusal = ServingError(error.code, error.message)
            raise refusal

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
        model: ModelVersion,
        signature_name: str,
        inputs: Mapping[str, DeclaredTensor],
        output_filter: tuple[str, ...] = (),
        request_bytes: int = 0,
    ) -> Prediction:
        """`decode` the inputs (in a compute slot for a request of ``request_bytes``), then
        `run` them.

        Raises
        ------
        ServingError
            As `decode` and `run`.
        """
        decoded = self.decode_in_slot(
            request_bytes, lambda: self.decode(model, signature_name, inputs, output_filter)
        )
        return self.run(decoded)

    def decode(
        self,
        model: ModelVersion,
        signature_name: str,
        inputs: Mapping[str, DeclaredTensor],
        output_filter: tuple[str, ...] = (),
    ) -> "DecodedRequest":
        """Check ``inputs`` as declared against the signature, then materialise them.

        Call it through `decode_in_slot` (materialising is the memory-hungry part).

        Parameters
        ----------
        model:
            The version to run (from `resolve`).
        signature_name:
            A predict signature of the SavedModel.
        inputs:
            Input name to the tensor the request declares; materialised only once its dtype,
            shape and batch passed.
        output_filter:
            Output names to return; empty returns all of them.

        Raises
        ------
        ServingError
            ``INVALID_ARGUMENT`` for a wrong signature, input name, dtype, shape, batch size,
            output filter, or values that do not fit (float pixels out of range).
        """
        signature = self.signature(model, signature_name)
        check_declared(signature, signature_name, inputs, self.max_batch_size)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names {unknown} not in signature '{signature_name}' (outputs:"
                f" {', '.join(sorted(signature.outputs))})",
            )
        arrays = {name: tensor.materialise() for name, tensor in sorted(inputs.items())}
        if model.input_range is not None and model.input_range.name in arrays:
            _check_range(arrays[model.input_range.name], model.input_range, signature_name)
        return DecodedRequest(model, signature_name, arrays, output_filter)

    def run(self, request: "DecodedRequest") -> Prediction:
        """Run a decoded request (through the batcher when batching is on), each signature
        call holding a compute slot.

        Raises
        ------
        ServingError
            ``INVALID_ARGUMENT`` naming the batch element the signature rejected.
        """
        function = request.model.functions[request.signature_name]
        signature_name = request.signature_name

        def run(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            with self._slots, memory.returned_after():
                return _run_signature(function, signature_name, batch)

        arrays = request.arrays
        try:
            if self._batcher is None:
                outputs = run(arrays)
            else:
                outputs = self._batcher.submit((request.model.version, signature_name), run, arrays)
        except _Rejected as error:
            raise _name_failed_element(run, arrays, signature_name, error) from error
        if request.output_filter:
            outputs = {name: outputs[name] for name in request.output_filter}
        return Prediction(request.model.version, signature_name, outputs)


@dataclasses.dataclass(frozen=True)
class DecodedRequest:
    """A predict request whose inputs passed the checks, as arrays, ready to run."""

    model: ModelVersion
    signature_name: str
    arrays: dict[str, np.ndarray]
    output_filter: tuple[str, ...]


def check_declared(
    signature: meta_graph_pb2.SignatureDef,
    signature_name: str,
    inputs: Mapping[str, DeclaredTensor],
    max_batch_size: int,
) -> None:
    """Check the names, dtypes, shapes and batch of ``inputs`` against ``signature``.

    Dtypes must match exactly, as TensorFlow Serving requires; every input must hold the same
    batch, of 1 to ``max_batch_size`` examples.

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
    batch_sizes = set()
    for name in expected:
        info = signature.inputs[name]
        dtype = tf.dtypes.as_dtype(info.dtype)
        declared = inputs[name]
        if declared.dtype != dtype:
            raise _invalid(
                f"input '{name}' of signature '{signature_name}' must be {dtype.name}, got"
                f" {declared.dtype.name}"
            )
        _check_shape(declared.shape, info, signature_name, name)
        batch_sizes.add(declared.shape[0] if declared.shape else None)
    if len(batch_sizes) > 1:
        raise _invalid(f"inputs of signature '{signature_name}' differ in batch size")
    (batch_size,) = batch_sizes
    if batch_size == 0:
        raise _invalid(f"inputs of signature '{signature_name}' hold an empty batch")
    if batch_size is not None and batch_size > max_batch_size:
        raise _invalid(
            f"inputs of signature '{signature_name}' hold a batch of {batch_size}; this server"
            f" takes at most {max_batch_size} per request (--max_request_batch_size)"
        )


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
