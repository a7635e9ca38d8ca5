"""A real export served by `drscreen serve` answers like the SavedModel loaded in process."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from drscreen.serving.client import GrpcClient

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")

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


def test_drscreen_serve_returns_the_saved_model_outputs(exported, photographs, tmp_path):
    """gRPC serving_default and predict_float responses equal direct signature calls."""
    encoded, images, _ = photographs
    base = tmp_path / "base"
    shutil.copytree(exported.path, base / "1")
    grpc_port, rest_port = _free_port(), _free_port()
    command = [
        sys.executable, "-m", "drscreen", "serve", f"--model_base_path={base}",
        f"--port={grpc_port}", f"--rest_api_port={rest_port}",
        "--file_system_poll_wait_seconds=0",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    with open(tmp_path / "server.log", "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=REPO, env=env)
        try:
            url = f"http://127.0.0.1:{rest_port}/v1/models/drscreen"
            deadline = time.monotonic() + 120
            while not _available(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"drscreen serve did not become ready:\n{log.read()}")
                time.sleep(0.3)
            direct = tf.saved_model.load(exported.path).signatures
            with GrpcClient(f"127.0.0.1:{grpc_port}", "drscreen") as client:
                served_bytes = client.predict(encoded, signature="serving_default")
                served_float = client.predict(images, signature="predict_float")
            expected_bytes = direct["serving_default"](images=tf.constant(encoded))
            expected_float = direct["predict_float"](images=tf.constant(images))
        finally:
            process.terminate()
            process.wait(timeout=30)
    for served, expected in ((served_bytes, expected_bytes), (served_float, expected_float)):
        assert sorted(served) == ["grade", "heatmap", "lesions", "quality", "score"]
        for name, value in expected.items():
            np.testing.assert_allclose(served[name], value.numpy(), rtol=1e-5, atol=1e-7)
