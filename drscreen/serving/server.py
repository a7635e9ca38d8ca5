"""The model server: one model store, one predictor, gRPC and REST front ends.

Owns the server's configuration and life cycle: load the newest version, start both front
ends on the configured address, run until SIGTERM/SIGINT, then shut down within one grace
period: both front ends stop accepting at once, requests in flight (and the batches they wait
for) have until the end of the grace period to finish, polling stops, and the process exits.
A signal during the start-up load (whose retries can last minutes) interrupts it.
"""

import dataclasses
import logging
import signal
import threading
import time

from drscreen.serving.batching import BatchingConfig
from drscreen.serving.grpc_server import GrpcServer
from drscreen.serving.model_store import ModelStore
from drscreen.serving.predictor import Predictor, default_compute_slots
from drscreen.serving.rest_server import RestServer

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """What `ModelServer` serves and how (names follow TensorFlow Serving's flags).

    Attributes
    ----------
    model_name:
        Name clients put in their requests.
    model_base_path:
        Directory of integer version subdirectories, each a SavedModel.
    port:
        gRPC port.
    rest_api_port:
        REST port; 0 disables the REST API, as in TensorFlow Serving.
    host:
        Address both front ends bind (loopback by default).
    batching:
        Server-side batching parameters, or ``None`` to run requests one by one.
    file_system_poll_wait_seconds:
        Seconds between polls for new versions; 0 polls once at start.
    max_num_load_retries:
        Further attempts to load a version that failed to load.
    load_retry_interval_micros:
        Wait before each of those attempts, in microseconds.
    max_request_bytes:
        Largest accepted request (gRPC message or REST body).
    max_request_batch_size:
        Most examples (the first dimension of the inputs) in one request; more is refused
        before the request's values are read.
    compute_slots:
        Requests decoded or run at once (0: one per CPU core); the others wait. Bounds the
        memory that large requests take together.
    grpc_max_threads:
        Threads running gRPC predictions.
    grpc_receive_timeout_in_ms:
        A gRPC call whose request message has not arrived this long after it opened is
        dropped (``DEADLINE_EXCEEDED``).
    rest_api_num_threads:
        Threads serving REST requests (complete requests only: waitress reads them first).
    rest_api_timeout_in_ms:
        A REST request must arrive in full within this long of its first byte; a connection
        idle this long is closed.
    rest_api_max_connections:
        Most REST connections open at once.
    shutdown_grace_seconds:
        How long in-flight requests may take to finish at shutdown.
    """

    model_name: str
    model_base_path: str
    port: int = 8500
    rest_api_port: int = 8501
    host: str = "127.0.0.1"
    batching: BatchingConfig | None = None
    file_system_poll_wait_seconds: float = 1.0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    max_request_bytes: int = 64 * 1024 * 1024
    max_request_batch_size: int = 64
    compute_slots: int = 0
    grpc_max_threads: int = 8
    grpc_receive_timeout_in_ms: int = 30_000
    rest_api_num_threads: int = 8
    rest_api_timeout_in_ms: int = 30_000
    rest_api_max_connections: int = 100
    shutdown_grace_seconds: float = 5.0

    def __post_init__(self):
        if not self.model_name:
            raise ValueError("model_name must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if not 0 <= self.rest_api_port < 65536:
            raise ValueError(f"rest_api_port {self.rest_api_port} is not a TCP port (0: off)")
        if self.rest_api_port == self.port:
            raise ValueError(f"port and rest_api_port are both {self.port}")
        positive = (
            "max_request_bytes",
            "max_request_batch_size",
            "grpc_max_threads",
            "grpc_receive_timeout_in_ms",
            "rest_api_num_threads",
            "rest_api_timeout_in_ms",
            "rest_api_max_connections",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "file_system_poll_wait_seconds",
            "max_num_load_retries",
            "compute_slots",
            "shutdown_grace_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.load_retry_interval_micros < 0:
            raise ValueError(
                f"load_retry_interval_micros must be >= 0, got {self.load_retry_interval_micros}"
            )


class ModelServer:
    """Starts and stops the gRPC and REST front ends over one model.

    Parameters
    ----------
    config:
        The server configuration.
    """

    def __init__(self, config: ServerConfig):
        self.config = config
        self.store = ModelStore(
            config.model_name,
            config.model_base_path,
            config.file_system_poll_wait_seconds,
            config.max_num_load_retries,
            config.load_retry_interval_micros / 1e6,
        )
        self.predictor = Predictor(
            self.store,
            config.batching,
            config.max_request_batch_size,
            config.compute_slots or default_compute_slots(),
        )
        self._stop_requested = threading.Event()
        self._grpc: GrpcServer | None = None
        self._rest: RestServer | None = None
        self._rest_thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the newest version and start serving (returns once both ports listen, or at
        once after `request_stop`)."""
        config = self.config
        self.store.start()
        if self._stop_requested.is_set():
            return
        grpc_server = GrpcServer(
            self.predictor,
            config.host,
            config.port,
            config.grpc_max_threads,
            config.max_request_bytes,
            config.grpc_receive_timeout_in_ms / 1000,
        )
        grpc_server.start()
        self._grpc = grpc_server
        if config.rest_api_port:
            self._rest = RestServer(
                config.host,
                config.rest_api_port,
                self.predictor,
                config.rest_api_num_threads,
                config.max_request_bytes,
                config.rest_api_timeout_in_ms / 1000,
                config.rest_api_max_connections,
            )
            self._rest_thread = threading.Thread(
                target=self._rest.serve_forever, name="rest", daemon=True
            )
            self._rest_thread.start()
        rest = f", REST on {config.host}:{config.rest_api_port}" if self._rest else ""
        _LOG.info(
            "serving model %r: gRPC on %s:%d%s", config.model_name, config.host, config.port, rest
        )

    def request_stop(self) -> None:
        """Interrupt the start-up load; returns at once (safe in a signal handler)."""
        self._stop_requested.set()
        self.store.request_stop()

    def stop(self) -> None:
        """Stop accepting on both front ends at once, give requests in flight the grace period
        to finish, then release everything; returns within the grace period (plus ~0.5 s)."""
        grace = self.config.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        self.request_stop()
        grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None
        if self._rest is not None:
            self._rest.shutdown(deadline)
        if grpc_stopped is not None:
            grpc_stopped.result(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
        self.predictor.close(timeout=max(0.0, deadline - time.monotonic()))
        self.store.stop(timeout=max(0.0, deadline - time.monotonic()))
        _LOG.info("server stopped")


def serve(config: ServerConfig) -> None:
    """Run a `ModelServer` until SIGTERM or SIGINT, then stop it gracefully.

    Must be called from the main thread (it installs the signal handlers). A signal during
    the start-up load interrupts its retries.
    """
    stop = threading.Event()
    server = ModelServer(config)

    def request_stop(signum: int, _frame) -> None:
        _LOG.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        server.request_stop()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
