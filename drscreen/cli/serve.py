"""`drscreen serve`: serve an exported model over TensorFlow Serving's gRPC and REST APIs.

    drscreen serve --model_base_path=runs/export --model_name=drscreen \
        --port=8500 --rest_api_port=8501 [--enable_batching]

Flag names follow TensorFlow Serving's ``tensorflow_model_server`` where it has one.
"""

import gc
import os
import sys

# Before TensorFlow loads: its oneDNN allocator pools the buffers of large photographs and
# never hands them back (12 concurrent 6000 x 6000 PNGs left the server 1.9 GB larger for
# good); with the system allocator they are returned, at no measured cost in latency.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")

from absl import app, flags  # noqa: E402

from drscreen.serving.batching import BatchingConfig, parse_batching_parameters  # noqa: E402
from drscreen.serving.server import ServerConfig, serve  # noqa: E402

_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory of integer version subdirectories (SavedModels)."
)
_MODEL_NAME = flags.DEFINE_string("model_name", "drscreen", "Name clients use for the model.")
_PORT = flags.DEFINE_integer("port", 8500, "gRPC port.")
_REST_API_PORT = flags.DEFINE_integer("rest_api_port", 8501, "REST port (0 disables REST).")
_HOST = flags.DEFINE_string(
    "host", "127.0.0.1", "Address to bind; loopback unless you mean to expose the server."
)
_ENABLE_BATCHING = flags.DEFINE_boolean(
    "enable_batching", False, "Batch concurrent requests into one model call."
)
_BATCHING_PARAMETERS_FILE = flags.DEFINE_string(
    "batching_parameters_file", None, "TensorFlow Serving batching parameters (text proto)."
)
_POLL_SECONDS = flags.DEFINE_float(
    "file_system_poll_wait_seconds", 1.0, "Seconds between polls for new versions (0: once)."
)
_MAX_NUM_LOAD_RETRIES = flags.DEFINE_integer(
    "max_num_load_retries", 5, "Further attempts to load a version that failed to load."
)
_LOAD_RETRY_INTERVAL_MICROS = flags.DEFINE_integer(
    "load_retry_interval_micros", 60_000_000, "Microseconds between load attempts."
)
_MAX_REQUEST_BYTES = flags.DEFINE_integer(
    "max_request_bytes", 64 * 1024 * 1024, "Largest accepted request (gRPC message, REST body)."
)
_MAX_REQUEST_BATCH_SIZE = flags.DEFINE_integer(
    "max_request_batch_size", 64, "Most examples (images) in one request; more is refused."
)
_COMPUTE_SLOTS = flags.DEFINE_integer(
    "compute_slots", 0, "Requests decoded or run at once (0: one per CPU core); bounds memory."
)
_GRPC_MAX_THREADS = flags.DEFINE_integer("grpc_max_threads", 8, "Threads running gRPC predictions.")
_GRPC_RECEIVE_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "grpc_receive_timeout_in_ms", 30_000, "Drop a gRPC call whose request has not arrived by then."
)
_REST_API_NUM_THREADS = flags.DEFINE_integer("rest_api_num_threads", 8, "Threads serving REST.")
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms",
    30_000,
    "A REST request must arrive in full within this long of its first byte; idle connections"
    " are closed after it.",
)
_REST_API_MAX_CONNECTIONS = flags.DEFINE_integer(
    "rest_api_max_connections", 100, "Most REST connections open at once."
)


def _batching() -> BatchingConfig | None:
    path = _BATCHING_PARAMETERS_FILE.value
    if path and not _ENABLE_BATCHING.value:
        raise app.UsageError("--batching_parameters_file needs --enable_batching")
    if not _ENABLE_BATCHING.value:
        return None
    if not path:
        return BatchingConfig()
    try:
        with open(path, encoding="utf-8") as file:
            return parse_batching_parameters(file.read(), source=path)
    except (OSError, ValueError) as error:
        raise app.UsageError(f"--batching_parameters_file: {error}") from error


SYSTEM_ALLOCATOR = "malloc"
"""``PYTHONMALLOC`` for the server: Python's own allocator keeps a 1 MiB arena while any object
in it lives, so the millions of floats of concurrent large JSON bodies stayed (+107 MiB after
four 12 MB bodies at once, +206 MiB after eight); with the system allocator `drscreen.serving.
memory` hands them back (+3 MiB after eight)."""


def _with_system_allocator() -> None:
    """Run this command again under `SYSTEM_ALLOCATOR` (read only when Python starts)."""
    if os.environ.get("PYTHONMALLOC") != SYSTEM_ALLOCATOR:
        os.environ["PYTHONMALLOC"] = SYSTEM_ALLOCATOR
        os.execv(sys.executable, sys.orig_argv)


def main(argv: list[str]) -> None:
    _with_system_allocator()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    base_path = _MODEL_BASE_PATH.value
    if not base_path:
        raise app.UsageError("--model_base_path is required")
    if not os.path.isdir(base_path):
        raise app.UsageError(f"--model_base_path {base_path!r} is not a directory")
    try:
        config = ServerConfig(
            model_name=_MODEL_NAME.value,
            model_base_path=os.path.abspath(base_path),
            port=_PORT.value,
            rest_api_port=_REST_API_PORT.value,
            host=_HOST.value,
            batching=_batching(),
            file_system_poll_wait_seconds=_POLL_SECONDS.value,
            max_num_load_retries=_MAX_NUM_LOAD_RETRIES.value,
            load_retry_interval_micros=_LOAD_RETRY_INTERVAL_MICROS.value,
            max_request_bytes=_MAX_REQUEST_BYTES.value,
            max_request_batch_size=_MAX_REQUEST_BATCH_SIZE.value,
            compute_slots=_COMPUTE_SLOTS.value,
            grpc_max_threads=_GRPC_MAX_THREADS.value,
            grpc_receive_timeout_in_ms=_GRPC_RECEIVE_TIMEOUT_IN_MS.value,
            rest_api_num_threads=_REST_API_NUM_THREADS.value,
            rest_api_timeout_in_ms=_REST_API_TIMEOUT_IN_MS.value,
            rest_api_max_connections=_REST_API_MAX_CONNECTIONS.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        serve(config)
    except RuntimeError as error:  # a port that cannot be bound
        sys.exit(f"drscreen serve: {error}")
    # The shutdown is over; collecting TensorFlow's objects at interpreter exit would take
    # seconds more (3-5 s on 2 cores) beyond the grace period, for memory the OS frees anyway.
    gc.freeze()
