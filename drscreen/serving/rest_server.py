"""The REST front end: TensorFlow Serving's ``/v1/models`` HTTP/JSON API.

Owns the routes ``GET /v1/models/<name>[/versions/<v>]`` (status),
``GET /v1/models/<name>[/versions/<v>]/metadata`` and
``POST /v1/models/<name>[/versions/<v>]:predict``, errors as ``{"error": "..."}`` with the HTTP
status TensorFlow Serving uses, a bounded request body (413 beyond) and a bounded pool of
worker threads. One request per connection (HTTP/1.0 semantics).
"""

import http.server
import json
import logging
import re
import socket
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from drscreen.serving.errors import ServingError, http_status
from drscreen.serving.grpc_server import model_status_response
from drscreen.serving.predictor import Predictor
from drscreen.serving.tensors import (
    format_predict_response,
    parse_predict_inputs,
    request_signature_name,
)

_LOG = logging.getLogger(__name__)
_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:[A-Za-z]+)?$"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "RestServer"
    server_version = "drscreen-serving"
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        _LOG.debug("%s %s", self.address_string(), format % args)

    def _answer(self, route) -> None:
        try:
            match = _ROUTE.match(self.path.split("?", 1)[0])
            if match is None:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}"
                )
            if match["label"] is not None:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"version label '{match['label']}' is not configured (use /versions/<v>)",
                )
            version = int(match["version"]) if match["version"] is not None else None
            status, body = route(match["name"], version, match["tail"])
        except ServingError as error:
            _LOG.info("rejected %s %s: %s", self.command, self.path, error)
            status = 413 if isinstance(error, _TooLarge) else http_status(error.code)
            body = {"error": error.message}
        self._send(status, body)

    def _get(self, name: str, version: int | None, tail: str | None) -> tuple[int, dict]:
        if tail is None:
            statuses = self.server.predictor.status(name, version)
            return 200, _to_json(model_status_response(statuses))
        if tail == "/metadata":
            model = self.server.predictor.resolve(name, version)
            signatures = {
                key: json_format.MessageToDict(value, preserving_proto_field_name=True)
                for key, value in model.signature_defs.items()
            }
            spec = {"name": name, "signature_name": "", "version": str(model.version)}
            return 200, {
                "model_spec": spec,
                "metadata": {"signature_def": {"signature_def": signatures}},
            }
        raise _malformed(self)

    def _post(self, name: str, version: int | None, tail: str | None) -> tuple[int, dict]:
        if tail is None or tail.startswith("/"):
            raise _malformed(self)
        if tail != ":predict":
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"'{tail[1:]}' is not implemented; use ':predict'"
            )
        body = self._read_json()
        signature_name = request_signature_name(body)
        predictor = self.server.predictor
        signature = predictor.signature(predictor.resolve(name, version), signature_name)
        dtypes = {key: _numpy_dtype(info.dtype) for key, info in signature.inputs.items()}
        inputs, row_format = parse_predict_inputs(body, dtypes)
        prediction = predictor.predict(name, version, signature_name, inputs)
        return 200, format_predict_response(prediction.outputs, row_format)

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "missing Content-Length header")
        if int(length) > self.server.max_request_bytes:
            self._discard(int(length))
            raise _TooLarge(int(length), self.server.max_request_bytes)
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}"
            ) from error

    def _discard(self, length: int) -> None:
        """Read and drop a refused body in chunks so the client sees the answer, not a reset."""
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _TooLarge(ServingError):
    """A request body over the limit; answered 413 without reading it."""

    def __init__(self, length: int, limit: int):
        super().__init__(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request body of {length} bytes exceeds the limit of {limit} bytes",
        )


def _malformed(handler: _Handler) -> ServingError:
    return ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {handler.command} {handler.path}"
    )


def _numpy_dtype(enum: int) -> np.dtype:
    return np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype)


def _to_json(message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class RestServer(http.server.HTTPServer):
    """An HTTP server whose requests run on a bounded thread pool.

    Parameters
    ----------
    address:
        ``(host, port)`` to bind.
    predictor:
        Answers the requests.
    max_workers:
        Threads handling requests; further connections wait in the pool's queue.
    max_request_bytes:
        Largest request body accepted (413 beyond).
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        predictor: Predictor,
        max_workers: int,
        max_request_bytes: int,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.predictor = predictor
        self.max_request_bytes = max_request_bytes
        self._pool = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="rest")
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        self._pool.submit(self._process, request, client_address)

    def _process(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken connection must not kill the worker
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=True)
