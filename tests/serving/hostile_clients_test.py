"""End-to-end: `drscreen serve` against clients that try to take its memory, workers or model.

One server in a subprocess (one compute slot, two gRPC workers, 1.5 s to receive a request,
at most 8 REST connections, batches of at most 16) takes, in order: requests whose declared
shape would need gigabytes, too large batches, streams that never send their request, REST
connections that trickle, client errors that used to be answered 500, large JSON bodies at
once, a replaced version, and SIGTERM with a request in flight. The server's memory is read
from /proc (peak resident memory reset before each attack).
"""

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from bench.server_load import declared_request
from tests.serving.served_process import copy_version, start_served

RECEIVE_TIMEOUT_SECONDS = 1.5
MAX_BATCH = 16
MAX_CONNECTIONS = 8
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def server(exports, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("base"))
    copy_version(exports, 1, base, 1)
    flags = [
        "--file_system_poll_wait_seconds=0.2", "--compute_slots=1", "--grpc_max_threads=2",
        f"--grpc_receive_timeout_in_ms={int(RECEIVE_TIMEOUT_SECONDS * 1000)}",
        f"--rest_api_timeout_in_ms={int(RECEIVE_TIMEOUT_SECONDS * 1000)}",
        f"--rest_api_max_connections={MAX_CONNECTIONS}", f"--max_request_batch_size={MAX_BATCH}",
    ]  # fmt: skip
    running = start_served(base, os.path.join(base, "..", "server.log"), flags)
    yield running
    running.close()


def _pngs(count: int, seed: int, side: int = 16) -> list[bytes]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    return [cv2.imencode(".png", image)[1].tobytes() for image in pixels]


def _request(images, signature: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "drscreen"
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


def _refusal(server, request, timeout: float = 30) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        server.predictions.Predict(request, timeout=timeout)
    return raised.value


def _scores(response: predict_pb2.PredictResponse) -> np.ndarray:
    return tf.make_ndarray(response.outputs["score"])


def _assert_serving(server) -> None:
    response = server.predictions.Predict(_request(_pngs(1, seed=0)), timeout=30)
    assert _scores(response).shape == (1,)


def _post(server, path: str, body: bytes, content_type: str = "application/json"):
    request = urllib.request.Request(
        f"{server.url}/{path}", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_shape_bombs_are_refused_before_any_memory_is_spent(server):
    """A 52-byte request declaring [64, 1024, 1024, 3] floats (805 MB once padded), four at
    once, and strings declaring [1000] with one value: INVALID_ARGUMENT, peak RSS + < 100 MB."""
    bomb = declared_request(types_pb2.DT_FLOAT, [64, 1024, 1024, 3], float_val=[0.0])
    assert len(bomb.SerializeToString()) == 52
    strings = declared_request(types_pb2.DT_STRING, [1000], string_val=[b"x" * 1000])
    before = server.rss_mib()
    server.reset_peak_rss()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        errors = list(pool.map(lambda r: _refusal(server, r), [bomb] * 4 + [strings]))
    assert server.peak_rss_mib() - before < 100
    for error in errors[:4]:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "holds 201326592 values but the tensor carries 1 float_val" in error.details()
    assert errors[4].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "holds 1000 values but the tensor carries 1 string_val" in errors[4].details()
    _assert_serving(server)


@pytest.mark.parametrize(
    ("request_of", "message"),
    [
        (
            lambda: declared_request(types_pb2.DT_STRING, [-5], string_val=[b"x"]),
            "shape [-5] has a negative dimension",
        ),
        (
            lambda: declared_request(types_pb2.DT_STRING, [2], string_val=[b"x"] * 3),
            "shape [2] holds 2 values but the tensor carries 3 string_val",
        ),
        (
            lambda: declared_request(types_pb2.DT_FLOAT, [1, 16, 16, 3], int_val=[0] * 768),
            "carries 0 float_val",
        ),
        (lambda: declared_request(12345, [1], int_val=[0]), "unknown dtype enum 12345"),
        (lambda: declared_request(types_pb2.DT_RESOURCE, [1]), "resource is not supported"),
        (lambda: _request(_pngs(MAX_BATCH + 1, seed=1)), f"takes at most {MAX_BATCH} per"),
    ],
    ids=["negative dimension", "too many values", "wrong value field", "unknown dtype",
         "resource dtype", "batch over the limit"],
)  # fmt: skip
def test_declared_tensors_that_do_not_fit_are_invalid_argument(server, request_of, message):
    """Each tensor whose declaration does not fit what it carries, or a batch over
    --max_request_batch_size, is INVALID_ARGUMENT naming why."""
    error = _refusal(server, request_of())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_the_largest_allowed_batch_is_answered(server):
    """A batch of exactly --max_request_batch_size images is scored."""
    response = server.predictions.Predict(_request(_pngs(MAX_BATCH, seed=2)), timeout=60)
    assert _scores(response).shape == (MAX_BATCH,)


def _never_sending_calls(server, count: int, release: threading.Event):
    """``count`` Predict streams that open and never send their message until ``release``."""
    channel = grpc.insecure_channel(server.target)
    method = channel.stream_unary(
        PREDICT_METHOD,
        request_serializer=predict_pb2.PredictRequest.SerializeToString,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )

    def silent():
        release.wait(30)
        yield predict_pb2.PredictRequest()

    return channel, [method.future(silent(), timeout=30) for _ in range(count)]


def test_never_sending_grpc_streams_leave_predict_and_status_answered(server):
    """Forty streams that open Predict and never send (eight held every worker before) leave
    a legitimate Predict and GetModelStatus answered within 5 s; the server drops them once
    the receive timeout is over, long before their own 30 s deadline."""
    release = threading.Event()
    channel, silent = _never_sending_calls(server, 40, release)
    try:
        time.sleep(0.3)  # let the streams open
        start = time.monotonic()
        _assert_serving(server)
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "drscreen"
        assert server.models.GetModelStatus(status, timeout=5).model_version_status
        assert time.monotonic() - start < 5.0
        for call in silent:
            error = call.exception(timeout=RECEIVE_TIMEOUT_SECONDS + 10)
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "did not arrive within 1.5 s" in error.details()
    finally:
        release.set()
        channel.close()


def test_status_and_metadata_never_wait_behind_predictions(server):
    """With both gRPC prediction workers busy on slow requests (4000 x 4000 PNGs), status and
    metadata answer in under a second; once answered, the photographs' memory is returned."""
    slow_images = [_flat_png(4000)] * 3
    before = server.rss_mib()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [
            pool.submit(server.predictions.Predict, _request(slow_images), timeout=120)
            for _ in range(4)
        ]
        time.sleep(0.5)
        assert not any(call.done() for call in slow)
        start = time.monotonic()
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "drscreen"
        server.models.GetModelStatus(status, timeout=5)
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata.model_spec.name = "drscreen"
        server.predictions.GetModelMetadata(metadata, timeout=5)
        assert time.monotonic() - start < 1.0
        assert not all(call.done() for call in slow)
        for call in slow:
            assert _scores(call.result()).shape == (3,)
    time.sleep(0.5)
    assert server.rss_mib() - before < 100  # a decoded photograph alone is 192 MB as floats


def _flat_png(side: int) -> bytes:
    """A ``side`` x ``side`` PNG of an orange disc: small to send, slow to decode."""
    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 2 - 1, (40, 90, 200), -1)
    return cv2.imencode(".png", image)[1].tobytes()


def test_trickling_rest_connections_are_closed_at_the_request_deadline(server):
    """Eight connections (the limit) sending a header byte every 0.3 s are closed once their
    request has not arrived within the deadline; a legitimate request is then answered."""
    header = b"GET /v1/models/drscreen HTTP/1.1\r\nHost: trickle\r\nX-Pad: " + b"a" * 1000
    trickles = [socket.create_connection(server.rest_address) for _ in range(MAX_CONNECTIONS)]
    closed_after = {}
    start = time.monotonic()
    try:
        for sock in trickles:
            sock.setblocking(False)
        for index in range(len(header)):
            for number, sock in enumerate(trickles):
                if number in closed_after:
                    continue
                try:
                    sock.send(header[index : index + 1])
                    if sock.recv(1) == b"":
                        closed_after[number] = time.monotonic() - start
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after[number] = time.monotonic() - start
            if len(closed_after) == len(trickles) or time.monotonic() - start > 15:
                break
            time.sleep(0.3)
        assert len(closed_after) == len(trickles)
        # Closed a deadline after the server accepted them (plus its 1 s cleanup cycle): a
        # connection waiting for a slot behind the others is accepted, and closed, later.
        assert max(closed_after.values()) < 3 * (RECEIVE_TIMEOUT_SECONDS + 1.0)
        with urllib.request.urlopen(f"{server.url}/drscreen", timeout=5) as response:
            assert response.status == 200
    finally:
        for sock in trickles:
            sock.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ('{"instances": ["\\ud800"]}', "application/json", 400, "not valid Unicode"),
        ('{"instances": [{"b64": "\\u00e9"}]}', "application/json", 400, "invalid base64"),
        ('{"instances": [' + "9" * 5000 + "]}", "application/json", 400, "JSON Parse error"),
        ('{"instances": [{"b64": ""}]}', "image/jpeg", 415, "Content-Type image/jpeg"),
        ('{"instances": [{"b64": ""}]}', "multipart/form-data; b=x", 415, "multipart/form-data"),
    ],
    ids=["lone surrogate", "b64 not ascii", "5000-digit integer", "jpeg body", "form data"],
)
def test_rest_client_errors_are_answered_400_or_415(server, body, content_type, status, message):
    """Client errors that used to be answered 500 are 400 (or 415) with a message."""
    code, answer = _post(server, "drscreen:predict", body.encode(), content_type)
    assert (code, message in answer["error"]) == (status, True)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""],
)
def test_rest_json_bodies_of_common_clients_are_accepted(server, content_type):
    """JSON sent as curl -d, urllib or fetch() send it (form-urlencoded, text/plain) or with
    no Content-Type is scored, as TF Serving scores it."""
    body = json.dumps(
        {"instances": [[[[1.0, 2.0, 3.0]] * 16] * 16], "signature_name": "predict_score"}
    )
    code, answer = _post(server, "drscreen:predict", body.encode(), content_type)
    assert code == 200 and len(answer["predictions"]) == 1


def _float_body(examples: int) -> bytes:
    """A predict_float body of ``examples`` 16 x 16 images (over the batch limit: refused after
    it is parsed), about 3.4 KB of JSON each."""
    image = json.dumps([[[1.5, 2.5, 3.5]] * 16] * 16)
    rows = ",".join([image] * examples)
    return f'{{"signature_name": "predict_float", "instances": [{rows}]}}'.encode()


def test_large_json_bodies_are_parsed_a_few_at_a_time_and_memory_returns(server):
    """Four 12 MB bodies at once take well under four times the peak memory of one alone (one
    compute slot), and the server's RSS is back within 100 MB of where it was afterwards."""
    body = _float_body(2800)
    assert 11e6 < len(body) < 13e6
    before = server.rss_mib()
    server.reset_peak_rss()
    code, answer = _post(server, "drscreen:predict", body)
    assert code == 400 and f"at most {MAX_BATCH}" in answer["error"]
    one = server.peak_rss_mib() - before
    server.reset_peak_rss()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = [
            code
            for code, _ in pool.map(lambda _: _post(server, "drscreen:predict", body), range(4))
        ]
    four = server.peak_rss_mib() - before
    assert codes == [400] * 4
    assert one > 50  # the parse itself is measured
    assert four < 2.5 * one  # 1-2x with one slot; 4.2x when every body is parsed at once
    time.sleep(0.5)
    assert server.rss_mib() - before < 100
    _assert_serving(server)


def test_replaced_version_is_served_with_its_new_weights(server, exports):
    """rm -rf base/1 then base/1 from other weights: within the poll interval (0.2 s) and its
    load, Predict answers with the new weights; removing it alone gives NOT_FOUND."""
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    expected = {
        source: tf.saved_model.load(os.path.join(exports, str(source)))
        .signatures["predict_score"](images=tf.constant(pixels))["grade"]
        .numpy()
        for source in (1, 2)
    }

    def grades() -> np.ndarray | None:
        try:
            response = server.predictions.Predict(_request(pixels, "predict_score"), timeout=30)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return None
        return tf.make_ndarray(response.outputs["grade"])

    np.testing.assert_allclose(grades(), expected[1], rtol=1e-6)
    shutil.rmtree(os.path.join(server.base, "1"))
    copy_version(exports, 2, server.base, 1)
    start = time.monotonic()
    while (served := grades()) is None or np.allclose(served, expected[1]):
        assert time.monotonic() - start < 10
        time.sleep(0.05)
    np.testing.assert_allclose(served, expected[2], rtol=1e-6)
    shutil.rmtree(os.path.join(server.base, "1"))
    start = time.monotonic()
    while grades() is not None:
        assert time.monotonic() - start < 10
        time.sleep(0.05)
    copy_version(exports, 1, server.base, 1)
    start = time.monotonic()
    while grades() is None:
        assert time.monotonic() - start < 10
        time.sleep(0.05)


def test_sigterm_refuses_new_calls_finishes_the_one_in_flight_and_exits(server):
    """SIGTERM with a slow request in flight: a call 0.3 s later is refused at once, the one in
    flight is answered, and the process exits 0 within the 5 s grace period, promptly once the
    last call is answered (interpreter teardown took 3-5 s more)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            server.predictions.Predict, _request([_flat_png(4000)] * 4), timeout=60
        )
        time.sleep(0.3)  # two such photographs were answered within 0.5 s on a quiet machine
        assert not in_flight.done()
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        with grpc.insecure_channel(server.target) as channel:
            late = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                late.Predict(_request(_pngs(1, seed=4)), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - signalled < 1.5
        assert _scores(in_flight.result()).shape == (4,)
        answered = time.monotonic()
    assert server.process.wait(timeout=30) == 0
    exited = time.monotonic()
    assert exited - signalled < 5.0 + 1.5
    assert exited - answered < 2.0  # nothing is left to do once the last call is answered
