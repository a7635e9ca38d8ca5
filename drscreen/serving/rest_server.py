"""The REST front end: TensorFlow Serving's ``/v1/models`` HTTP/JSON API, on waitress.

Owns the routes ``GET /v1/models/<name>[/versions/<v>]`` (status),
``GET /v1/models/<name>[/versions/<v>]/metadata`` and
``POST /v1/models/<name>[/versions/<v>]:predict``, and every answer as JSON: results, and
errors as ``{"error": "..."}`` with the HTTP status TensorFlow Serving uses. A predict body
must be JSON (a declared ``Content-Type`` of another kind is answered 415); it is parsed and
converted to arrays holding one of the predictor's compute slots, so concurrent large bodies
are decoded a few at a time.

The HTTP transport is waitress, a WSGI server made for hostile clients: one I/O thread reads
each request in full (header and body) before a worker thread sees it, so slow or idle
clients hold no worker; a body whose ``Content-Length`` is over the limit is refused (413)
before it is read, and a malformed header (``Content-Length: abc``) is answered 400 naming it.
A request must arrive in full within ``timeout_seconds`` of its first byte, and a connection
idle that long is closed: a client sending a byte now and then holds its connection no longer
than one that sends nothing. At most ``max_connections`` are open at once. HTTP/1.1 with
keep-alive.
"""

import contextlib
import gc
import http
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

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
_LOOP_SECONDS = 0.1  # how often the I/O loop looks at a shutdown request


class RestApp:
    """The WSGI application answering TensorFlow Serving's REST API from a `Predictor`."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        # PEP 3333 hands the path over as latin-1; clients send UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        try:
            status, body = self._answer(method, path, environ)
        except ServingError as error:
            _LOG.info("rejected %s %s: %s", method, path, error)
            status = 415 if isinstance(error, _UnsupportedMediaType) else http_status(error.code)
            body = {"error": error.message}
        except Exception:  # noqa: BLE001 - the client gets an answer whatever went wrong
            _LOG.exception("failed %s %s", method, path)
            status, body = 500, {"error": f"internal error answering {method} {path}"}
        payload = json.dumps(body).encode("utf-8")
        start_response(
            f"{status} {http.HTTPStatus(status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _answer(self, method: str, path: str, environ: dict) -> tuple[int, dict]:
        match = _ROUTE.match(path)
        if match is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
        if match["label"] is not None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"version label '{match['label']}' is not configured (use /versions/<v>)",
            )
        version = int(match["version"]) if match["version"] is not None else None
        if method == "GET":
            return self._get(match["name"], version, match["tail"], path)
        if method == "POST":
            return self._post(match["name"], version, match["tail"], path, environ)
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"method {method} is not supported")

    def _get(self, name: str, version: int | None, tail: str | None, path: str):
        if tail is None:
            return 200, _to_json(model_status_response(self.predictor.status(name, version)))
        if tail == "/metadata":
            model = self.predictor.resolve(name, version)
            signatures = {
                key: json_format.MessageToDict(value, preserving_proto_field_name=True)
                for key, value in model.signature_defs.items()
            }
            spec = {"name": name, "signature_name": "", "version": str(model.version)}
            metadata = {"signature_def": {"signature_def": signatures}}
            if model.model_card is not None:
                metadata["model_card"] = model.model_card
            return 200, {"model_spec": spec, "metadata": metadata}
        raise _malformed("GET", path)

    def _post(self, name: str, version: int | None, tail: str | None, path: str, environ):
        if tail is None or tail.startswith("/"):
            raise _malformed("POST", path)
        if tail != ":predict":
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"'{tail[1:]}' is not implemented; use ':predict'"
            )
        _check_content_type(environ.get("CONTENT_TYPE", ""))
        request_bytes = int(environ.get("CONTENT_LENGTH") or 0)
        decoded, row_format = self.predictor.decode_in_slot(
            request_bytes, lambda: self._decode(name, version, environ)
        )
        prediction = self.predictor.run(decoded)
        return 200, format_predict_response(prediction.outputs, row_format)

    def _decode(self, name: str, version: int | None, environ: dict):
        """The request's arrays (the parsed body is freed when this returns)."""
        body = _read_json(environ)
        signature_name = request_signature_name(body)
        predictor = self.predictor
        model = predictor.resolve(name, version)
        signature = predictor.signature(model, signature_name)
        dtypes = {key: _numpy_dtype(info.dtype) for key, info in signature.inputs.items()}
        inputs, row_format = parse_predict_inputs(body, dtypes)
        return predictor.decode(model, signature_name, inputs), row_format


# Content types a JSON body arrives with: JSON itself, and the defaults of curl -d and urllib
# (form-urlencoded) and of fetch() with a string body (text/plain), which TF Serving's own
# examples rely on.
_JSON_CONTENT_TYPES = {"application/json", "application/x-www-form-urlencoded", "text/plain"}


def _check_content_type(content_type: str) -> None:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type and media_type not in _JSON_CONTENT_TYPES and not media_type.endswith("+json"):
        raise _UnsupportedMediaType(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Content-Type {media_type} is not supported: send a JSON body (application/json),"
            ' with images as {"b64": "<base64>"}',
        )


class _UnsupportedMediaType(ServingError):
    """A body declared as something other than JSON: HTTP 415 (gRPC has no such request)."""


_gc_pauses = 0
_gc_pauses_lock = threading.Lock()


@contextlib.contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (nested across threads).

    Parsing a large JSON body creates a list per row, and every few hundred new lists the
    collector walks the hundreds of thousands of objects TensorFlow holds: with it, a 12 MB
    body took 7 s to parse instead of 0.6 s. A parsed body holds no reference cycles.
    """
    global _gc_pauses
    with _gc_pauses_lock:
        _gc_pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_pauses_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.enable()


def _number_parser(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A JSON number hook for one body: converts with ``convert``, reusing the object of a
    number seen before (pixel values repeat: a large image body takes ~45 % less memory).

    Being Python, it also lets other threads run while a large body is parsed: json's C
    scanner alone holds the interpreter lock for the whole parse (3.5 s for 64 MB), which
    stalled every other request of the server.
    """
    seen: dict[str, Any] = {}

    def parse(text: str) -> Any:
        value = seen.get(text)
        if value is None:
            value = convert(text)
            if len(seen) < _NUMBERS_REUSED:
                seen[text] = value
        return value

    return parse


_NUMBERS_REUSED = 65_536


def _read_json(environ: dict) -> Any:
    """The request body as JSON (waitress has read it in full, within the size limit)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    if not raw or raw.isspace():
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "JSON Parse error: The document is empty"
        )
    try:
        text = raw.decode("utf-8")
        del raw  # the bytes are not needed while the text is parsed (64 MB less at the peak)
        with _garbage_collection_paused():
            return json.loads(
                text, parse_float=_number_parser(float), parse_int=_number_parser(int)
            )
    except ValueError as error:  # bad JSON or UTF-8; an integer of over 4,300 digits
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}"
        ) from error
    except RecursionError as error:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "JSON Parse error: nested too deeply"
        ) from error


def _malformed(method: str, path: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")


def _numpy_dtype(enum: int) -> np.dtype:
    return np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype)


def _to_json(message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class _JsonErrorTask(ErrorTask):
    """Waitress's own refusals (413, malformed header, ...) as ``{"error": ...}`` too."""

    def execute(self) -> None:
        error = self.request.error
        message = f"{error.reason}: {error.body}"
        if error.code == http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            limit = self.channel.server.adj.max_request_body_size - 1
            message = f"request body exceeds the limit of {limit} bytes"
        body = json.dumps({"error": message}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    """Waitress's channel, noting when the request being received began."""

    error_task_class = _JsonErrorTask
    request_started = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        return super().received(data)


class _Server(TcpWSGIServer):
    """Waitress's server, closing a connection whose request takes too long to arrive.

    Waitress closes a connection idle for ``channel_timeout``, but any byte resets that timer,
    so a client sending one byte every few seconds would hold its connection for ever.
    """

    channel_class = _Channel

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = time.monotonic() - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            if channel.request is not None and channel.request_started < cutoff:
                _LOG.info(
                    "closing a REST connection whose request did not arrive within %g s",
                    self.adj.channel_timeout,
                )
                channel.will_close = True


class RestServer:
    """The REST API on ``host:port``, served by a bounded pool of worker threads.

    Parameters
    ----------
    host, port:
        Address to bind.
    predictor:
        Answers the requests.
    max_workers:
        Threads running requests; complete requests wait for one in a queue.
    max_request_bytes:
        Largest request body accepted (413 beyond, refused from its ``Content-Length``).
    timeout_seconds:
        A request (header and body) must arrive within this long of its first byte, and a
        connection idle this long between requests is closed.
    max_connections:
        Most connections open at once; further ones wait in the listen backlog.

    Raises
    ------
    RuntimeError
        When the address cannot be bound.
    """

    def __init__(
        self,
        host: str,
        port: int,
        predictor: Predictor,
        max_workers: int,
        max_request_bytes: int,
        timeout_seconds: float = 30.0,
        max_connections: int = 100,
    ):
        self._map: dict = {}
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self._server = _Server(
                RestApp(predictor),
                map=self._map,
                listen=listen,
                threads=max_workers,
                max_request_body_size=max_request_bytes + 1,  # waitress refuses >= the size
                channel_timeout=timeout_seconds,
                cleanup_interval=min(1.0, timeout_seconds),
                connection_limit=max_connections,
                ident="drscreen-serving",
                asyncore_use_poll=True,
            )
        except OSError as error:
            raise RuntimeError(f"cannot bind REST to {listen}: {error}") from error
        self.port = self._server.effective_port
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Run the I/O loop until `shutdown` (call from one thread)."""
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=_LOOP_SECONDS, map=self._map, use_poll=True, count=1)
            wasyncore.dispatcher.close(self._server)  # stop accepting; keep the trigger
            while self._busy() and time.monotonic() < self._deadline:
                wasyncore.loop(timeout=_LOOP_SECONDS, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def shutdown(self, deadline: float) -> None:
        """Stop accepting (within one turn of the I/O loop, 0.1 s), let requests in flight
        finish until ``deadline`` (a `time.monotonic` time), then close every connection."""
        self._deadline = deadline
        self._stopping.set()
        self._stopped.wait(max(0.0, deadline - time.monotonic()) + _LOOP_SECONDS * 2)
        remaining = max(0.0, deadline - time.monotonic())
        self._server.task_dispatcher.shutdown(timeout=remaining)
        wasyncore.close_all(self._map)

    def _busy(self) -> bool:
        return any(
            getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
            for channel in list(self._map.values())
        )
