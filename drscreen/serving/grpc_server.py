"""The gRPC front end: TensorFlow Serving's `PredictionService` and `ModelService`.

Owns the mapping between the protos of `tensorflow_serving.apis` and the `Predictor`:
`PredictionService.Predict` and `GetModelMetadata`, `ModelService.GetModelStatus`, with
errors reported by their gRPC status code. It runs grpc's asyncio server in a thread of its
own, so that a client cannot hold the server by being slow:

- a call holds no thread while its request message arrives, and one whose message has not
  arrived within ``receive_timeout_seconds`` is dropped with ``DEADLINE_EXCEEDED`` (a stream
  opened and never sent to, "slow-loris", costs a coroutine for that long);
- GetModelStatus and GetModelMetadata are answered on the event loop, never behind predictions;
- Predict runs on ``max_workers`` threads; four times as many predictions may be admitted
  (running or queued), beyond which a call gets ``RESOURCE_EXHAUSTED`` at once;
- a request message is at most ``max_request_bytes`` (``RESOURCE_EXHAUSTED`` beyond).

The three methods are registered as client-streaming so that the handler itself reads the one
request message, under its deadline; on the wire a unary call is the same, so TF Serving's
unary stubs call them unchanged.
"""

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
from collections.abc import Callable

import grpc
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from drscreen.serving.errors import ServingError
from drscreen.serving.predictor import Predictor
from drscreen.serving.tensors import DEFAULT_SIGNATURE, proto_tensor, to_tensor_proto

_LOG = logging.getLogger(__name__)
_STATE = get_model_status_pb2.ModelVersionStatus.State
METADATA_FIELDS = ("signature_def", "model_card")
_STREAMS_PER_CONNECTION = 100


def _version_of(spec: model_pb2.ModelSpec) -> int | None:
    if spec.WhichOneof("version_choice") == "version_label":
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"version label '{spec.version_label}' is not configured (request a version number)",
        )
    return spec.version.value if spec.HasField("version") else None


def predict_response(
    predictor: Predictor, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    """Answer a `PredictRequest`: its tensors are checked as declared before they are read."""
    spec = request.model_spec
    model = predictor.resolve(spec.name, _version_of(spec))
    inputs = {name: proto_tensor(proto, name) for name, proto in request.inputs.items()}
    signature_name = spec.signature_name or DEFAULT_SIGNATURE
    prediction = predictor.predict(
        model, signature_name, inputs, tuple(request.output_filter), request.ByteSize()
    )
    response = predict_pb2.PredictResponse()
    response.model_spec.name = spec.name
    response.model_spec.version.value = prediction.version
    response.model_spec.signature_name = prediction.signature_name
    for name, value in prediction.outputs.items():
        response.outputs[name].CopyFrom(to_tensor_proto(value))
    return response


def metadata_response(
    predictor: Predictor, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """Answer a `GetModelMetadataRequest`: ``signature_def`` as TensorFlow Serving does, and
    ``model_card`` (drscreen's addition: the version's card as JSON text in a
    ``google.protobuf.StringValue``)."""
    fields = list(request.metadata_field)
    unsupported = [field for field in fields if field not in METADATA_FIELDS]
    if unsupported or not fields:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"metadata_field must name some of {list(METADATA_FIELDS)}, got {fields}",
        )
    model = predictor.resolve(request.model_spec.name, _version_of(request.model_spec))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = model.version
    if "signature_def" in fields:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature)
        response.metadata["signature_def"].Pack(signature_map)
    if "model_card" in fields:
        if model.model_card is None:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"version {model.version} of '{request.model_spec.name}' has no model card "
                f"({model.path}/model_card.json)",
            )
        card = wrappers_pb2.StringValue(value=json.dumps(model.model_card))
        response.metadata["model_card"].Pack(card)
    return response


def model_status_response(statuses) -> get_model_status_pb2.GetModelStatusResponse:
    """A `GetModelStatusResponse` for a list of `VersionStatus` (shared with REST)."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = _STATE.Value(status.state)
        entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0] if status.error else 0
        entry.status.error_message = status.error
    return response


class _DaemonWorkers:
    """A fixed pool of daemon threads running submitted calls in order.

    Daemon threads, unlike `concurrent.futures.ThreadPoolExecutor`'s (which the interpreter
    joins at exit), let the process exit once the grace period is over even if a prediction
    is still running.
    """

    def __init__(self, count: int, name: str):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(count):
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True).start()

    def submit(self, call: Callable, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, call, args))
        return future

    def _work(self) -> None:
        while True:
            future, call, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting call
                future.set_exception(error)


class GrpcServer:
    """TensorFlow Serving's gRPC API on ``host:port``.

    Parameters
    ----------
    predictor:
        Answers the requests.
    host, port:
        Address to bind (``port`` must be free).
    max_workers:
        Threads running predictions; ``4 * max_workers`` predictions may be admitted at once.
    max_request_bytes:
        Largest request message accepted.
    receive_timeout_seconds:
        A call whose request message has not fully arrived this long after it opened is
        dropped with ``DEADLINE_EXCEEDED``.
    """

    def __init__(
        self,
        predictor: Predictor,
        host: str,
        port: int,
        max_workers: int,
        max_request_bytes: int,
        receive_timeout_seconds: float = 30.0,
    ):
        self._predictor = predictor
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._max_request_bytes = max_request_bytes
        self._receive_timeout = receive_timeout_seconds
        self._max_admitted = 4 * max_workers
        self._admitted = 0  # read and written on the event loop only
        self._workers = _DaemonWorkers(max_workers, "grpc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="grpc", daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> None:
        """Bind and start serving; returns once the port listens.

        Raises
        ------
        RuntimeError
            When the address cannot be bound.
        """
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        except BaseException:
            self._close_loop()
            raise

    def stop(self, grace_seconds: float) -> concurrent.futures.Future:
        """Stop accepting calls now; calls in flight get ``grace_seconds`` to finish, then are
        cancelled. The returned future is done when the server has stopped."""
        stopped = asyncio.run_coroutine_threadsafe(self._server.stop(grace_seconds), self._loop)
        stopped.add_done_callback(lambda _: self._close_loop())
        return stopped

    async def _start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_request_bytes),
                ("grpc.max_concurrent_streams", _STREAMS_PER_CONNECTION),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "tensorflow.serving.PredictionService",
                    {
                        "Predict": self._handler(self._predict, predict_pb2.PredictRequest),
                        "GetModelMetadata": self._handler(
                            self._metadata, get_model_metadata_pb2.GetModelMetadataRequest
                        ),
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "tensorflow.serving.ModelService",
                    {
                        "GetModelStatus": self._handler(
                            self._status, get_model_status_pb2.GetModelStatusRequest
                        )
                    },
                ),
            )
        )
        try:
            bound = server.add_insecure_port(self._address)
        except RuntimeError as error:
            raise RuntimeError(f"cannot bind gRPC to {self._address}: {error}") from error
        if bound == 0:
            raise RuntimeError(f"cannot bind gRPC to {self._address}")
        await server.start()
        self._server = server

    def _run_loop(self) -> None:
        self._loop.run_forever()
        self._loop.close()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _handler(self, answer, request_type) -> grpc.RpcMethodHandler:
        async def handle(request_iterator, context):
            try:
                request = await asyncio.wait_for(anext(request_iterator), self._receive_timeout)
            except TimeoutError:
                _LOG.info("dropped a call whose request did not arrive in time")
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"the request message did not arrive within {self._receive_timeout:g} s",
                )
            except StopAsyncIteration:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
            try:
                return await answer(request)
            except ServingError as error:
                _LOG.info("rejected request: %s", error)
                await context.abort(error.code, error.message)

        return grpc.stream_unary_rpc_method_handler(
            handle,
            request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )

    async def _predict(self, request: predict_pb2.PredictRequest):
        if self._admitted >= self._max_admitted:
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._admitted} predictions are already running or queued; retry later",
            )
        self._admitted += 1
        try:
            work = self._workers.submit(predict_response, self._predictor, request)
            return await asyncio.wrap_future(work)
        finally:
            self._admitted -= 1

    async def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        return metadata_response(self._predictor, request)

    async def _status(self, request: get_model_status_pb2.GetModelStatusRequest):
        statuses = self._predictor.status(request.model_spec.name, _version_of(request.model_spec))
        return model_status_response(statuses)
