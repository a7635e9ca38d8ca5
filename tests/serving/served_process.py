"""`drscreen serve` in a subprocess for end-to-end tests: versions, free ports, a log,
readiness, memory."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from bench.served import peak_rss_mib, reset_peak_rss, rss_mib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedProcess:
    """A running `drscreen serve`, its addresses, official stubs and log."""

    def __init__(self, process: subprocess.Popen, grpc_port: int, rest_port: int, base: str, log):
        self.process = process
        self.base = base
        self.log = log
        self.target = f"127.0.0.1:{grpc_port}"
        self.rest_address = ("127.0.0.1", rest_port)
        self.rest_base = f"http://127.0.0.1:{rest_port}"
        self.url = f"{self.rest_base}/v1/models"
        self.channel = grpc.insecure_channel(self.target)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def log_text(self) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as file:
            return file.read()

    def rss_mib(self) -> float:
        """Resident memory of the server now."""
        return rss_mib(self.process.pid)

    def reset_peak_rss(self) -> None:
        """Start measuring the peak resident memory from now."""
        reset_peak_rss(self.process.pid)

    def peak_rss_mib(self) -> float:
        """Peak resident memory since `reset_peak_rss`."""
        return peak_rss_mib(self.process.pid)

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def copy_version(exports: str, source: int, base: str, version: int) -> str:
    """Copy export ``source`` to ``base/<version>`` atomically (copy aside, then rename)."""
    staging = os.path.join(base, f".copy-{version}")
    shutil.copytree(os.path.join(exports, str(source)), staging)
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target


def truncate_variables(path: str) -> None:
    """Cut the variables file of the version at ``path`` in half, as a copy caught midway
    leaves it (`tf.saved_model.load` then raises IndexError)."""
    data = os.path.join(path, "variables", "variables.data-00000-of-00001")
    with open(data, "r+b") as file:
        file.truncate(os.path.getsize(data) // 2)


def start_served(base: str, log_path: str, flags: list[str], timeout: float = 90) -> ServedProcess:
    """Start `drscreen serve` on ``base`` (model ``drscreen``) and wait until version 1 or
    later is AVAILABLE over REST; fails with the server's log otherwise."""
    grpc_port, rest_port = free_port(), free_port()
    log = open(log_path, "w+")  # noqa: SIM115 - closed by ServedProcess.close
    command = [
        sys.executable, "-m", "drscreen", "serve", f"--model_base_path={base}",
        "--model_name=drscreen", f"--port={grpc_port}", f"--rest_api_port={rest_port}", *flags,
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(command, stdout=log, stderr=log, cwd=REPO, env=env)
    served = ServedProcess(process, grpc_port, rest_port, base, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{served.url}/drscreen", timeout=5) as response:
                if json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE":
                    return served
        except OSError:
            pass
        time.sleep(0.2)
    text = served.log_text()
    served.close()
    raise RuntimeError(f"server did not become ready:\n{text}")
