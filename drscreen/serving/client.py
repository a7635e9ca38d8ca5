"""Clients of a TensorFlow Serving API (ours or TensorFlow Serving itself).

Owns the client side of both protocols: `GrpcClient` speaks `PredictionService` and
`ModelService` through the official `tensorflow_serving.apis` stubs, `RestClient` speaks the
``/v1/models`` JSON API with `urllib`. Both take encoded images (``bytes``) or a float array,
return outputs as numpy arrays, metadata and status as TensorFlow Serving's REST JSON, and
raise `ServingError` with the server's status code.
"""

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, wrappers_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from drscreen.serving.errors import ServingError, code_for_http_status
from drscreen.serving.tensors import DEFAULT_SIGNATURE, json_to_array, to_ndarray, to_tensor_proto

Images = Sequence[bytes] | np.ndarray


def images_array(images: Images) -> np.ndarray:
    """Encoded images as an object array of ``bytes``, or a float array as float32."""
    if isinstance(images, np.ndarray) and images.dtype.kind == "f":
        return images.astype(np.float32, copy=False)
    array = np.empty(len(images), dtype=object)
    array[:] = [bytes(image) for image in images]
    return array


class GrpcClient:
    """Client of `PredictionService` / `ModelService` over gRPC.

    Parameters
    ----------
    target:
        ``host:port`` of the server.
    model_name:
        The served model's name.
    timeout_seconds:
        Deadline of each call.
    max_message_bytes:
        Largest message sent or received.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        timeout_seconds: float = 30.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ):
        self.model_name = model_name
        self.timeout_seconds = timeout_seconds
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def __enter__(self) -> "GrpcClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def predict(
        self,
        images: Images,
        signature: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        input_name: str = "images",
    ) -> dict[str, np.ndarray]:
        """Run ``signature`` on encoded images or a float batch; output name to array."""
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, version)
        request.model_spec.signature_name = signature
        request.inputs[input_name].CopyFrom(to_tensor_proto(images_array(images)))
        response = self._call(self._prediction.Predict, request)
        return {name: to_ndarray(proto, name) for name, proto in response.outputs.items()}

    def metadata(self, version: int | None = None) -> dict:
        """Model metadata as the REST API returns it (``model_spec``, ``metadata``)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, version)
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        signatures = {
            name: json_format.MessageToDict(value, preserving_proto_field_name=True)
            for name, value in signature_map.signature_def.items()
        }
        spec = {
            "name": response.model_spec.name,
            "signature_name": response.model_spec.signature_name,
            "version": str(response.model_spec.version.value),
        }
        metadata: dict[str, Any] = {"signature_def": {"signature_def": signatures}}
        card = self.model_card(version)
        if card is not None:
            metadata["model_card"] = card
        return {"model_spec": spec, "metadata": metadata}

    def model_card(self, version: int | None = None) -> dict | None:
        """The version's model card (drscreen's ``model_card`` metadata field); None when the
        version has none or the server (TensorFlow Serving itself) does not know the field."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["model_card"])
        self._spec(request.model_spec, version)
        try:
            response = self._call(self._prediction.GetModelMetadata, request)
        except ServingError as error:
            if error.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        card = wrappers_pb2.StringValue()
        response.metadata["model_card"].Unpack(card)
        return json.loads(card.value)

    def status(self, version: int | None = None) -> dict:
        """Version states as the REST API returns them (``model_version_status``)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, version)
        response = self._call(self._models.GetModelStatus, request)
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def _spec(self, spec, version: int | None) -> None:
        spec.name = self.model_name
        if version is not None:
            spec.version.value = version

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout_seconds)
        except grpc.RpcError as error:
            raise ServingError(error.code(), error.details()) from error


class RestClient:
    """Client of the ``/v1/models`` REST API.

    Parameters
    ----------
    base_url:
        e.g. ``http://127.0.0.1:8501``.
    model_name:
        The served model's name.
    timeout_seconds:
        Socket timeout of each request.
    """

    def __init__(self, base_url: str, model_name: str, timeout_seconds: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout_seconds = timeout_seconds

    def predict(
        self,
        images: Images,
        signature: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        input_name: str = "images",
    ) -> dict[str, np.ndarray]:
        """Run ``signature`` (columnar format); outputs cast to the signature's dtypes."""
        array = images_array(images)
        if array.dtype == np.dtype(object):
            value = [{"b64": base64.b64encode(image).decode("ascii")} for image in array]
        else:
            value = array.tolist()
        body = {"signature_name": signature, "inputs": {input_name: value}}
        response = self._request(f"{self._model_path(version)}:predict", body)
        dtypes = self._output_dtypes(signature, version)
        outputs = response["outputs"]
        if not isinstance(outputs, dict):
            outputs = {next(iter(dtypes)): outputs}
        return {name: json_to_array(value, dtypes[name], name) for name, value in outputs.items()}

    def metadata(self, version: int | None = None) -> dict:
        """``GET /v1/models/<name>[/versions/<v>]/metadata``."""
        return self._request(f"{self._model_path(version)}/metadata")

    def model_card(self, version: int | None = None) -> dict | None:
        """The version's model card from its metadata (None when it has none)."""
        return self.metadata(version)["metadata"].get("model_card")

    def status(self, version: int | None = None) -> dict:
        """``GET /v1/models/<name>[/versions/<v>]``."""
        return self._request(self._model_path(version))

    def _model_path(self, version: int | None) -> str:
        path = f"/v1/models/{self.model_name}"
        return path if version is None else f"{path}/versions/{version}"

    def _output_dtypes(self, signature: str, version: int | None) -> dict[str, np.dtype]:
        signatures = self.metadata(version)["metadata"]["signature_def"]["signature_def"]
        return {
            name: np.dtype(
                tf.dtypes.as_dtype(types_pb2.DataType.Value(info["dtype"])).as_numpy_dtype
            )
            for name, info in signatures[signature]["outputs"].items()
        }

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            message = json.loads(error.read() or b"{}").get("error", error.reason)
            raise ServingError(code_for_http_status(error.code), message) from error
