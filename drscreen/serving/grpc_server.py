"""The gRPC front end: TensorFlow Serving's `PredictionService` and `ModelService`.

Owns the mapping between the protos of `tensorflow_serving.apis` and the `Predictor`:
`PredictionService.Predict` and `GetModelMetadata`, `ModelService.GetModelStatus`. Errors are
reported with their gRPC status code. Requests are bounded in size
(``grpc.max_receive_message_length``) and served by a bounded thread pool.
"""

import logging
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from drscreen.serving.errors import ServingError
from drscreen.serving.predictor import Predictor
from drscreen.serving.tensors import DEFAULT_SIGNATURE, to_ndarray, to_tensor_proto

_LOG = logging.getLogger(__name__)
_STATE = get_model_status_pb2.ModelVersionStatus.State


def _version_of(spec: model_pb2.ModelSpec) -> int | None:
    if spec.WhichOneof("version_choice") == "version_label":
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"version label '{spec.version_label}' is not configured (request a version number)",
        )
    return spec.version.value if spec.HasField("version") else None


def _abort(context: grpc.ServicerContext, error: ServingError) -> None:
    _LOG.info("rejected request: %s", error)
    context.abort(error.code, error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata."""

    def __init__(self, predictor: Predictor):
        self._predictor = predictor

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:  # noqa: N802
        try:
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = {name: to_ndarray(proto, name) for name, proto in request.inputs.items()}
            prediction = self._predictor.predict(
                request.model_spec.name,
                _version_of(request.model_spec),
                signature_name,
                inputs,
                tuple(request.output_filter),
            )
        except ServingError as error:
            _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = prediction.version
        response.model_spec.signature_name = prediction.signature_name
        for name, value in prediction.outputs.items():
            response.outputs[name].CopyFrom(to_tensor_proto(value))
        return response

    def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        try:
            unsupported = [field for field in request.metadata_field if field != "signature_def"]
            if unsupported or not request.metadata_field:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}",
                )
            model = self._predictor.resolve(
                request.model_spec.name, _version_of(request.model_spec)
            )
        except ServingError as error:
            _abort(context, error)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus."""

    def __init__(self, predictor: Predictor):
        self._predictor = predictor

    def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            statuses = self._predictor.status(
                request.model_spec.name, _version_of(request.model_spec)
            )
        except ServingError as error:
            _abort(context, error)
        return model_status_response(statuses)


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


def start_grpc_server(
    predictor: Predictor, host: str, port: int, max_workers: int, max_request_bytes: int
) -> grpc.Server:
    """Start the gRPC server on ``host:port``.

    Parameters
    ----------
    predictor:
        Answers the requests.
    host, port:
        Address to bind (``port`` must be free).
    max_workers:
        Size of the thread pool handling RPCs; at most four times as many RPCs may be in
        flight, beyond which gRPC answers ``RESOURCE_EXHAUSTED``.
    max_request_bytes:
        Largest request message accepted (``RESOURCE_EXHAUSTED`` beyond).

    Raises
    ------
    RuntimeError
        When the address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", max_request_bytes)],
        maximum_concurrent_rpcs=4 * max_workers,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(predictor), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(predictor), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise RuntimeError(f"cannot bind gRPC to {address}: {error}") from error
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC to {address}")
    server.start()
    return server
