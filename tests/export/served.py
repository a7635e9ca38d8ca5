"""`drscreen serve` started on an export base for a test, stopped after it."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _available(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE"
    except OSError:
        return False


@contextlib.contextmanager
def drscreen_serve(base: Path, log_path: Path) -> Iterator[str]:
    """Serve ``base`` (versions inside) and yield the gRPC address once REST says AVAILABLE;
    fail the test with the server's log if it never is."""
    grpc_port, rest_port = _free_port(), _free_port()
    command = [
        sys.executable, "-m", "drscreen", "serve", f"--model_base_path={base}",
        f"--port={grpc_port}", f"--rest_api_port={rest_port}",
        "--file_system_poll_wait_seconds=0",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    with open(log_path, "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=REPO, env=env)
        try:
            url = f"http://127.0.0.1:{rest_port}/v1/models/drscreen"
            deadline = time.monotonic() + 120
            while not _available(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"drscreen serve did not become ready:\n{log.read()}")
                time.sleep(0.3)
            yield f"127.0.0.1:{grpc_port}"
        finally:
            process.terminate()
            process.wait(timeout=30)
