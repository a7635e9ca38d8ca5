"""Reliability of `drscreen serve` under load, hostile clients and slow clients.

    python -m bench.server_load                      # from the repository root
    python -m bench.server_load --model_base_path=runs/export --requests=2000

1. Bounded load: ``--clients`` callers (half gRPC, half REST) send ``--requests`` requests in
   all to ``serving_default`` (one encoded synthetic photograph each); every
   ``--malformed_every``-th request is malformed (corrupt image bytes over gRPC; ``null`` as
   a float or an unterminated JSON body over REST). Reports valid requests that failed (must
   be 0), malformed ones that were not refused with INVALID_ARGUMENT / 400 (must be 0),
   requests/s, p50/p99 latency of the valid ones, and the server's RSS before and after.
2. Honest clients beside each attack: ``--clients`` honest callers (half gRPC, half REST) send
   ``--honest_requests`` requests each, once on a quiet server and once beside each attack:
   shape bombs (52-byte requests declaring [64, 1024, 1024, 3] floats, and strings declaring
   [1000] with one value), slow-loris gRPC (``--loris_streams`` Predict streams that never
   send their request, reopened as the server drops them), trickling REST
   (``--trickle_connections`` connections sending a header byte a second, reconnecting when
   closed) and 64 MB JSON bodies (``--large_body_clients`` callers posting float images, over
   the batch limit: the parse is the cost). For each: honest failures, p50/p99 latency (and
   p99 over the quiet p99), the server's RSS before, at its peak during and 5 s after the
   attack, and what the attack got.
3. Slow clients: with ``--slow_connections`` idle connections and as many that promised a
   body they never send, ``--slow_probe_requests`` valid REST requests one after another;
   reports their slowest answer (the REST server answers them from its 8 workers meanwhile).
4. Large photographs: 12 concurrent gRPC requests of one 6000 × 6000 PNG each (legal, under
   the 40 MP limit); the answers, the time, and the server's RSS before, at its peak and 5 s
   after.
5. Decompression bomb: a real 12000 × 12000 JPEG sent over gRPC, refused from its header;
   reports its size, the answer and the server's RSS before and after.

Without ``--model_base_path`` it exports and serves an untrained `small` network at 192 px
(score + sensitivity heatmap). `tests/serving/server_test.py` runs `run_load` against the
tests' server and asserts the failure counts only; `tests/serving/hostile_clients_test.py`
holds the attacks' own pass/fail checks. Runtime: ~8 min on 2 cores.
"""

import base64
import concurrent.futures
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import cv2
import grpc
import numpy as np
from absl import app, flags
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from bench.served import default_export, peak_rss_mib, reset_peak_rss, rss_mib, start_server
from drscreen.export.samples import encoded_photographs
from drscreen.serving.client import GrpcClient
from drscreen.serving.errors import ServingError, http_status
from drscreen.serving.model_store import EXPORT_DESCRIPTION_FILE, list_versions

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
_HONEST_REQUESTS = flags.DEFINE_integer(
    "honest_requests", 200, "Requests of each honest client beside an attack.", flag_values=_FLAGS
)
_LORIS_STREAMS = flags.DEFINE_integer(
    "loris_streams", 40, "Predict streams that never send their request.", flag_values=_FLAGS
)
_TRICKLE_CONNECTIONS = flags.DEFINE_integer(
    "trickle_connections", 16, "REST connections trickling their header.", flag_values=_FLAGS
)
_LARGE_BODY_CLIENTS = flags.DEFINE_integer(
    "large_body_clients", 2, "Callers posting 64 MB JSON bodies.", flag_values=_FLAGS
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


def _rest_predict(rest_url: str, body: bytes, timeout: float = 60) -> int:
    """The HTTP status of a REST predict request."""
    request = urllib.request.Request(
        f"{rest_url}/v1/models/drscreen:predict", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
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


class Attack:
    """Hostile clients in background threads until `stop`; `outcome` says what they got."""

    name = ""

    def __init__(self, target: str, rest_address: tuple[str, int]):
        self.target = target
        self.rest_address = rest_address
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def start(self) -> None:
        for index, loop in enumerate(self.loops()):
            thread = threading.Thread(target=loop, name=f"{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def loops(self) -> list[Callable[[], None]]:
        raise NotImplementedError

    def outcome(self) -> str:
        return ", ".join(f"{count} {what}" for what, count in sorted(self.counts.items()))


def declared_request(dtype: int, shape: list[int], **values) -> predict_pb2.PredictRequest:
    """A request for ``drscreen`` whose ``images`` declares ``dtype`` and ``shape`` but carries
    ``values`` (value field name to entries)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "drscreen"
    tensor = request.inputs["images"]
    tensor.dtype = dtype
    for size in shape:
        tensor.tensor_shape.dim.add().size = size
    for field, entries in values.items():
        getattr(tensor, field).extend(entries)
    return request


class ShapeBombs(Attack):
    """52-byte requests declaring [64, 1024, 1024, 3] floats (805 MB if padded), and strings
    declaring [1000] with one 1 KB value, sent in a loop by four callers."""

    name = "shape bombs"

    def loops(self):
        floats = declared_request(types_pb2.DT_FLOAT, [64, 1024, 1024, 3], float_val=[0.0])
        strings = declared_request(types_pb2.DT_STRING, [1000], string_val=[b"x" * 1000])
        assert len(floats.SerializeToString()) == 52
        return [lambda request=request: self._send(request) for request in [floats, strings] * 2]

    def _send(self, request: predict_pb2.PredictRequest) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self._stop.is_set():
                try:
                    stub.Predict(request, timeout=30)
                    self.count("accepted")
                except grpc.RpcError as error:
                    self.count(f"answered {error.code().name}")


class SlowLoris(Attack):
    """``streams`` Predict calls that open and never send their request, each reopened as
    soon as the server drops it."""

    name = "slow-loris gRPC"

    def __init__(self, target: str, rest_address: tuple[str, int], streams: int):
        super().__init__(target, rest_address)
        self.streams = streams

    def loops(self):
        return [self._hold]

    def _hold(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            predict = channel.stream_unary(
                "/tensorflow.serving.PredictionService/Predict",
                request_serializer=predict_pb2.PredictRequest.SerializeToString,
                response_deserializer=predict_pb2.PredictResponse.FromString,
            )

            def silent():
                self._stop.wait()
                yield predict_pb2.PredictRequest()

            calls = [predict.future(silent(), timeout=3600) for _ in range(self.streams)]
            while not self._stop.wait(0.05):
                for index, call in enumerate(calls):
                    if call.done():
                        code = call.exception().code().name if call.exception() else "OK"
                        self.count(f"dropped {code}")
                        calls[index] = predict.future(silent(), timeout=3600)
            for call in calls:
                call.cancel()


class TrickleRest(Attack):
    """``connections`` REST connections sending one header byte a second, reconnecting when
    the server closes them; records how long the server let each one hold its connection."""

    name = "trickling REST"

    def __init__(self, target: str, rest_address: tuple[str, int], connections: int):
        super().__init__(target, rest_address)
        self.connections = connections
        self.held_seconds: list[float] = []

    def loops(self):
        return [self._trickle] * self.connections

    def _trickle(self) -> None:
        header = b"GET /v1/models/drscreen HTTP/1.1\r\nHost: trickle\r\nX-Pad: " + b"a" * 10_000
        while not self._stop.is_set():
            opened = time.monotonic()
            with socket.create_connection(self.rest_address) as sock:
                sock.settimeout(1.0)
                for index in range(len(header)):
                    if self._stop.is_set():
                        return
                    try:
                        sock.sendall(header[index : index + 1])
                        if sock.recv(1) == b"":
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        break
            with self._lock:
                self.held_seconds.append(time.monotonic() - opened)

    def outcome(self) -> str:
        held = self.held_seconds
        if not held:
            return "no connection closed by the server yet"
        return (
            f"{len(held)} connections closed by the server after {np.median(held):.1f} s (median)"
        )


class LargeBodies(Attack):
    """``clients`` callers posting ~64 MB JSON bodies of float images in a loop (over the batch
    limit: refused after the body is parsed, which is the cost)."""

    name = "64 MB JSON bodies"

    def __init__(self, target: str, rest_address: tuple[str, int], clients: int, size: int):
        super().__init__(target, rest_address)
        self.clients = clients
        image = json.dumps(np.full((size, size, 3), 127.5, np.float32).tolist())
        copies = (64 * 1024 * 1024 - 100) // (len(image) + 1)
        self.body = (
            '{"signature_name": "predict_float", "instances": [' + ",".join([image] * copies) + "]}"
        ).encode()
        self.seconds: list[float] = []

    def loops(self):
        return [self._post] * self.clients

    def _post(self) -> None:
        rest_url = f"http://{self.rest_address[0]}:{self.rest_address[1]}"
        while not self._stop.is_set():
            start = time.monotonic()
            self.count(f"answered {_rest_predict(rest_url, self.body, timeout=300)}")
            with self._lock:
                self.seconds.append(time.monotonic() - start)

    def outcome(self) -> str:
        mean = np.mean(self.seconds) if self.seconds else float("nan")
        return f"{super().outcome()} ({len(self.body) / 2**20:.0f} MiB each, {mean:.1f} s each)"


@dataclasses.dataclass
class BesideAttack:
    """Honest clients' results beside one attack, and the server's memory."""

    name: str
    load: LoadResult
    rss_before: float
    rss_peak: float
    rss_after: float
    outcome: str


def honest_load_beside(
    attack: Attack | None, process_id: int, run_honest: Callable[[], LoadResult]
) -> BesideAttack:
    """Run the honest load while ``attack`` runs (None: a quiet server); RSS before, at its
    peak during, and 5 s after."""
    rss_before = rss_mib(process_id)
    reset_peak_rss(process_id)
    if attack is not None:
        attack.start()
        time.sleep(1.0)
    try:
        load = run_honest()
    finally:
        if attack is not None:
            attack.stop()
    rss_peak = peak_rss_mib(process_id)
    time.sleep(5.0)
    return BesideAttack(
        name=attack.name if attack is not None else "quiet",
        load=load,
        rss_before=rss_before,
        rss_peak=rss_peak,
        rss_after=rss_mib(process_id),
        outcome=attack.outcome() if attack is not None else "",
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


@dataclasses.dataclass
class MemoryUse:
    """The server's RSS around one burst of requests, and what they were answered."""

    answers: list[int]
    seconds: float
    rss_before: float
    rss_peak: float
    rss_after: float


def large_photographs(target: str, process_id: int, count: int, side: int) -> MemoryUse:
    """``count`` concurrent gRPC requests of one ``side`` x ``side`` PNG each (legal: under
    the 40 MP limit); RSS before, at its peak and 5 s after."""
    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 2 - 1, (40, 90, 200), -1)
    png = cv2.imencode(".png", image)[1].tobytes()
    rss_before = rss_mib(process_id)
    reset_peak_rss(process_id)
    start = time.monotonic()

    def send(_: int) -> int:
        with GrpcClient(target, "drscreen", timeout_seconds=600) as client:
            return _grpc_predict(client, png)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(send, range(count)))
    seconds = time.monotonic() - start
    rss_peak = peak_rss_mib(process_id)
    time.sleep(5.0)
    return MemoryUse(answers, seconds, rss_before, rss_peak, rss_mib(process_id))


def bomb_jpeg(side: int = 12000) -> bytes:
    """A ``side`` × ``side`` JPEG of a flat orange disc on black: a few MB on disk."""
    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 2 - 1, (40, 90, 200), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()


def _input_size(base_path: str) -> int:
    """The image size the newest version's description declares."""
    newest = os.path.join(base_path, str(list_versions(base_path)[-1]))
    with open(os.path.join(newest, EXPORT_DESCRIPTION_FILE), encoding="utf-8") as file:
        return int(json.load(file)["input"]["size"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _FLAGS.mark_as_parsed()  # its flags were parsed as part of absl's global ones
    base_path = _MODEL_BASE_PATH.value or default_export()
    (photograph,) = encoded_photographs(1, seed=3)
    process, target, rest_port = start_server(base_path, rest=True)
    rest_url = f"http://127.0.0.1:{rest_port}"
    rest_address = ("127.0.0.1", rest_port)
    clients = _CLIENTS.value

    def run_honest() -> LoadResult:
        requests = clients * _HONEST_REQUESTS.value
        return run_load(target, rest_url, photograph, requests, clients, 10**9)

    try:
        run_load(target, rest_url, photograph, 4 * clients, clients, 10**9)
        rss_before = rss_mib(process.pid)
        print(f"bounded load: {_REQUESTS.value} requests", file=sys.stderr)
        result = run_load(
            target, rest_url, photograph, _REQUESTS.value, clients, _MALFORMED_EVERY.value
        )
        rss_after = rss_mib(process.pid)
        attacks = [
            None,
            ShapeBombs(target, rest_address),
            SlowLoris(target, rest_address, _LORIS_STREAMS.value),
            TrickleRest(target, rest_address, _TRICKLE_CONNECTIONS.value),
            LargeBodies(target, rest_address, _LARGE_BODY_CLIENTS.value, _input_size(base_path)),
        ]
        beside = []
        for attack in attacks:
            print(f"honest load beside {attack.name if attack else 'nothing'}", file=sys.stderr)
            beside.append(honest_load_beside(attack, process.pid, run_honest))
        print("slow clients", file=sys.stderr)
        slowest = slowest_answer_beside_slow_clients(
            rest_address, photograph, _SLOW_CONNECTIONS.value, _SLOW_PROBE_REQUESTS.value
        )
        print("large photographs", file=sys.stderr)
        photographs = large_photographs(target, process.pid, count=12, side=6000)
        print("decompression bomb", file=sys.stderr)
        bomb = bomb_jpeg()
        rss_before_bomb = rss_mib(process.pid)
        with GrpcClient(target, "drscreen") as client:
            bomb_status = _grpc_predict(client, bomb)
        rss_after_bomb = rss_mib(process.pid)
    finally:
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
        exit_seconds = time.monotonic() - signalled
    malformed = _REQUESTS.value // _MALFORMED_EVERY.value
    print(f"bounded load    : {result.requests} requests from {clients} clients "
          f"(half gRPC, half REST), {malformed} malformed")  # fmt: skip
    print(f"failures        : {result.valid_failures} valid failed, "
          f"{result.malformed_accepted} malformed not refused")  # fmt: skip
    print(f"throughput      : {result.requests_per_second:.1f} requests/s")
    print(
        f"latency (valid) : p50 {result.latency_ms(50):.0f} ms, p99 {result.latency_ms(99):.0f} ms"
    )
    print(f"server RSS      : {rss_before:.0f} MiB before, {rss_after:.0f} MiB after")
    quiet_p99 = beside[0].load.latency_ms(99)
    print(f"honest clients  : {clients} x {_HONEST_REQUESTS.value} requests beside each attack")
    print("| attack | honest failed | p50 / p99 ms | p99 / quiet p99 | RSS MiB before / peak /"
          " 5 s after | what the attack got |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in beside:
        print(f"| {row.name} | {row.load.valid_failures} | {row.load.latency_ms(50):.0f} /"
              f" {row.load.latency_ms(99):.0f} | {row.load.latency_ms(99) / quiet_p99:.2f} |"
              f" {row.rss_before:.0f} / {row.rss_peak:.0f} / {row.rss_after:.0f} |"
              f" {row.outcome} |")  # fmt: skip
    print(f"slow clients    : slowest of {_SLOW_PROBE_REQUESTS.value} valid REST requests beside "
          f"{2 * _SLOW_CONNECTIONS.value} slow connections: {slowest * 1000:.0f} ms")  # fmt: skip
    print(f"large photos    : 12 concurrent requests of a 6000x6000 PNG answered"
          f" {sorted(set(photographs.answers))} in {photographs.seconds:.1f} s; RSS"
          f" {photographs.rss_before:.0f} -> peak {photographs.rss_peak:.0f} -> 5 s after"
          f" {photographs.rss_after:.0f} MiB")  # fmt: skip
    print(f"bomb            : 12000x12000 JPEG of {len(bomb) / 1e6:.1f} MB answered {bomb_status};"
          f" RSS {rss_before_bomb:.0f} -> {rss_after_bomb:.0f} MiB")  # fmt: skip
    print(f"SIGTERM         : exit code {exit_code} after {exit_seconds:.1f} s")


if __name__ == "__main__":
    flags.FLAGS.append_flag_values(_FLAGS)
    app.run(main)
