"""A `drscreen serve` subprocess for the serving benchmarks, the export they default to, and
its memory as the kernel reports it (Linux's /proc)."""

import os
import socket
import subprocess
import sys
import tempfile
import time

from drscreen.export.exporter import ExportConfig, export
from drscreen.models import build
from drscreen.serving.client import GrpcClient
from drscreen.serving.errors import ServingError


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_export() -> str:
    """A fresh SavedModel export of an untrained `small` network at 192 px (score + heatmap,
    as a trained one would be served); returns its base path."""
    base_path = tempfile.mkdtemp(prefix="drscreen-bench-")
    export(build("small", input_size=192), base_path, ExportConfig(formats=("saved_model",)))
    return base_path


def start_server(
    base_path: str, rest: bool, flags: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str, int]:
    """Start `drscreen serve` on ``base_path`` and wait until it answers.

    Returns the process, the gRPC target and the REST port (0 when ``rest`` is False).
    """
    grpc_port, rest_port = free_port(), free_port() if rest else 0
    command = [
        sys.executable, "-m", "drscreen", "serve", f"--model_base_path={base_path}",
        f"--port={grpc_port}", f"--rest_api_port={rest_port}", *flags,
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)
    target = f"127.0.0.1:{grpc_port}"
    deadline = time.monotonic() + _READY_SECONDS
    with GrpcClient(target, "drscreen", timeout_seconds=2) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.status()
                return process, target, rest_port
            except ServingError:
                time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not become ready in {_READY_SECONDS} s")


_READY_SECONDS = 180  # TensorFlow's import and the load take minutes on a busy 2-core machine


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` now, MiB."""
    return _status_mib(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of ``pid`` since it started or since `reset_peak_rss`, MiB."""
    return _status_mib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Restart the kernel's peak-RSS count of ``pid`` from its RSS now."""
    with open(f"/proc/{pid}/clear_refs", "w") as file:
        file.write("5")


def _status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")
