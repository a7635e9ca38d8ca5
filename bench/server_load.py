"""Reliability of `drscreen serve` under a bounded load with malformed requests, and slow clients.

    python -m bench.server_load                      # from the repository root
    python -m bench.server_load --model_base_path=runs/export --requests=2000

1. Bounded load: ``--clients`` callers (half gRPC, half REST) send ``--requests`` requests in
   all to ``serving_default`` (one encoded synthetic photograph each); every
   ``--malformed_every``-th request is malformed (corrupt image bytes over gRPC; ``null`` as
   a float or an unterminated JSON body over REST). Reports valid requests that failed (must
   be 0), malformed ones that were not refused with INVALID_ARGUMENT / 400 (must be 0),
   requests/s, p50/p99 latency of the valid ones, and the server's RSS before and after.
2. Slow clients: with ``--slow_connections`` idle connections and as many that promised a
   body they never send, ``--slow_probe_requests`` valid REST requests one after another;
   reports their slowest answer (the REST server answers them from its 8 workers meanwhile).
3. Decompression bomb: a real 12000 × 12000 JPEG sent over gRPC, refused from its header;
   reports its size, the answer and the server's RSS before and after.

Without ``--model_base_path`` it exports and serves an untrained `small` network at 192 px
(score + sensitivity heatmap). `tests/serving/server_test.py` runs `run_load` against the
tests' server and asserts the failure counts only. Runtime: ~1 min on 2 cores.
"""

import base64
import concurrent.futures
import dataclasses
import json
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
from absl import app, flags

from bench.served import default_export, start_server
from drscreen.export.samples import encoded_photographs
from drscreen.serving.client import GrpcClient
from drscreen.serving.errors import ServingError, http_status

_FLAGS = flags.FlagValues()
"""The script's own flags, joined to absl's global ones only when it runs as a script: tests
import `run_load`, and a global flag here would collide with `drscreen serve`'s."""
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path",
    "",
    "Export base (default: a fresh export of an untrained small net).",
    flag_values=_FLAGS,
)
_REQUESTS = flags.DEFINE_integer(
    "requests", 1000, "Requests of the bounded load.", flag_values=_FLAGS
)
_CLIENTS = flags.DEFINE_integer(
    "clients", 8, "Concurrent callers (half gRPC, half REST).", flag_values=_FLAGS
)
_MALFORMED_EVERY = flags.DEFINE_integer(
    "malformed_every", 10, "Every n-th request is malformed.", flag_values=_FLAGS
)
_SLOW_CONNECTIONS = flags.DEFINE_integer(
    "slow_connections", 8, "Idle connections, and as many with an unsent body.", flag_values=_FLAGS
)
_SLOW_PROBE_REQUESTS = flags.DEFINE_integer(
    "slow_probe_requests", 20, "Valid REST requests.", flag_values=_FLAGS
)


@dataclasses.dataclass
class LoadResult:
    """Outcome of `run_load`."""

    requests: int
    valid_failures: int
    malformed_accepted: int
    seconds: float
    latencies: list[float]

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies, percentile) * 1000)


def _rest_predict(rest_url: str, body: bytes) -> int:
    """The HTTP status of a REST predict request."""
    request = urllib.request.Request(
        f"{rest_url}/v1/models/drscreen:predict", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def _grpc_predict(client: GrpcClient, photograph: bytes) -> int:
    """The HTTP status matching the outcome of a gRPC predict request."""
    try:
        client.predict([photograph])
        return 200
    except ServingError as error:
        return http_status(error.code)


def run_load(
    grpc_target: str,
    rest_url: str,
    photograph: bytes,
    requests: int,
    clients: int,
    malformed_every: int,
) -> LoadResult:
    """``requests`` predict requests from ``clients`` threads (even: gRPC, odd: REST); every
    ``malformed_every``-th is malformed and must be refused as a bad request (400)."""
    valid_body = json.dumps({"instances": [{"b64": base64.b64encode(photograph).decode()}]})
    malformed_rest = [b'{"signature_name": "predict_float", "instances": [null]}', b'{"inst']

    def client(index: int) -> tuple[int, int, list[float]]:
        valid_failures = malformed_accepted = 0
        latencies = []
        with GrpcClient(grpc_target, "drscreen", timeout_seconds=60) as grpc_client:
            for number in range(index, requests, clients):
                malformed = number % malformed_every == malformed_every - 1
                start = time.perf_counter()
                if index % 2 == 0:
                    image = b"\xff\xd8 corrupt" if malformed else photograph
                    status = _grpc_predict(grpc_client, image)
                else:
                    body = malformed_rest[number % 2] if malformed else valid_body.encode()
                    status = _rest_predict(rest_url, body)
                if malformed:
                    malformed_accepted += status != 400
                elif status != 200:
                    valid_failures += 1
                    print(f"valid request {number} answered {status}", file=sys.stderr)
                else:
                    latencies.append(time.perf_counter() - start)
        return valid_failures, malformed_accepted, latencies

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    seconds = time.perf_counter() - start
    return LoadResult(
        requests=requests,
        valid_failures=sum(r[0] for r in results),
        malformed_accepted=sum(r[1] for r in results),
        seconds=seconds,
        latencies=[latency for r in results for latency in r[2]],
    )


def slowest_answer_beside_slow_clients(
    rest_address: tuple[str, int], photograph: bytes, connections: int, probes: int
) -> float:
    """Seconds of the slowest of ``probes`` valid REST requests while ``connections`` idle
    connections and ``connections`` unsent bodies are open."""
    slow = [socket.create_connection(rest_address) for _ in range(connections)]
    for _ in range(connections):
        sock = socket.create_connection(rest_address)
        sock.sendall(
            b"POST /v1/models/drscreen:predict HTTP/1.1\r\nHost: b\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        slow.append(sock)
    body = json.dumps({"instances": [{"b64": base64.b64encode(photograph).decode()}]}).encode()
    rest_url = f"http://{rest_address[0]}:{rest_address[1]}"
    try:
        slowest = 0.0
        for _ in range(probes):
            start = time.perf_counter()
            if _rest_predict(rest_url, body) != 200:
                raise RuntimeError("a valid REST request failed beside slow clients")
            slowest = max(slowest, time.perf_counter() - start)
        return slowest
    finally:
        for sock in slow:
            sock.close()


def bomb_jpeg(side: int = 12000) -> bytes:
    """A ``side`` × ``side`` JPEG of a flat orange disc on black: a few MB on disk."""
    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 2 - 1, (40, 90, 200), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _FLAGS.mark_as_parsed()  # its flags were parsed as part of absl's global ones
    base_path = _MODEL_BASE_PATH.value or default_export()
    (photograph,) = encoded_photographs(1, seed=3)
    process, target, rest_port = start_server(base_path, rest=True)
    rest_url = f"http://127.0.0.1:{rest_port}"
    try:
        run_load(target, rest_url, photograph, 4 * _CLIENTS.value, _CLIENTS.value, 10**9)
        rss_before = _rss_mib(process.pid)
        print(f"bounded load: {_REQUESTS.value} requests", file=sys.stderr)
        result = run_load(
            target, rest_url, photograph, _REQUESTS.value, _CLIENTS.value, _MALFORMED_EVERY.value
        )
        rss_after = _rss_mib(process.pid)
        print("slow clients", file=sys.stderr)
        slowest = slowest_answer_beside_slow_clients(
            ("127.0.0.1", rest_port),
            photograph,
            _SLOW_CONNECTIONS.value,
            _SLOW_PROBE_REQUESTS.value,
        )
        print("decompression bomb", file=sys.stderr)
        bomb = bomb_jpeg()
        rss_before_bomb = _rss_mib(process.pid)
        with GrpcClient(target, "drscreen") as client:
            bomb_status = _grpc_predict(client, bomb)
        rss_after_bomb = _rss_mib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    malformed = _REQUESTS.value // _MALFORMED_EVERY.value
    print(f"bounded load    : {result.requests} requests from {_CLIENTS.value} clients "
          f"(half gRPC, half REST), {malformed} malformed")  # fmt: skip
    print(f"failures        : {result.valid_failures} valid failed, "
          f"{result.malformed_accepted} malformed not refused")  # fmt: skip
    print(f"throughput      : {result.requests_per_second:.1f} requests/s")
    print(
        f"latency (valid) : p50 {result.latency_ms(50):.0f} ms, p99 {result.latency_ms(99):.0f} ms"
    )
    print(f"server RSS      : {rss_before:.0f} MiB before, {rss_after:.0f} MiB after")
    print(f"slow clients    : slowest of {_SLOW_PROBE_REQUESTS.value} valid REST requests beside "
          f"{2 * _SLOW_CONNECTIONS.value} slow connections: {slowest * 1000:.0f} ms")  # fmt: skip
    print(f"bomb            : 12000x12000 JPEG of {len(bomb) / 1e6:.1f} MB answered {bomb_status};"
          f" RSS {rss_before_bomb:.0f} -> {rss_after_bomb:.0f} MiB")  # fmt: skip
    print(f"SIGTERM         : exit code {exit_code}")


if __name__ == "__main__":
    flags.FLAGS.append_flag_values(_FLAGS)
    app.run(main)
