"""End-to-end: `drscreen serve` in a subprocess, queried as a TensorFlow Serving client would.

Tests run in order against one server: queries, errors, hostile and slow clients, batching, a
bounded load with malformed requests, version pick-up, SIGTERM.
"""

import base64
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from bench.server_load import run_load
from drscreen.serving.client import GrpcClient, RestClient
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import MODEL_CARD_FILE
from tests.serving.served_process import REPO, copy_version, start_served

MAX_REQUEST_BYTES = 256 * 1024
REST_TIMEOUT_SECONDS = 3


def _get(url: str) -> tuple[int, dict]:
    return _http(urllib.request.Request(url))


def _post(url: str, body: bytes) -> tuple[int, dict]:
    return _http(urllib.request.Request(url, data=body, method="POST"))


def _http(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


MODEL_CARD = {"model_details": {"architecture": "fake"}, "warning": "not for clinical use"}
"""Written as version 1's model_card.json, as `drscreen export` does."""


@pytest.fixture(scope="module")
def server(exports, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("base"))
    copy_version(exports, 1, base, 1)
    with open(os.path.join(base, "1", MODEL_CARD_FILE), "w", encoding="utf-8") as file:
        json.dump(MODEL_CARD, file)
    batching_file = os.path.join(base, "..", "batching.txt")
    with open(batching_file, "w") as file:
        file.write("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 20000 }\n")
    flags = [
        "--enable_batching", f"--batching_parameters_file={batching_file}",
        "--file_system_poll_wait_seconds=0.2", f"--max_request_bytes={MAX_REQUEST_BYTES}",
        f"--rest_api_timeout_in_ms={REST_TIMEOUT_SECONDS * 1000}",
    ]  # fmt: skip
    running = start_served(base, os.path.join(base, "..", "server.log"), flags)
    yield running
    running.close()


@pytest.fixture(scope="module")
def direct(exports):
    """The same SavedModels loaded in this process, by version."""
    return {v: tf.saved_model.load(os.path.join(exports, str(v))) for v in (1, 2)}


def _images(count: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
    encoded = [cv2.imencode(".png", image)[1].tobytes() for image in pixels]
    return encoded, pixels[..., ::-1].astype(np.float32)


def _direct(model, signature: str, images) -> dict[str, np.ndarray]:
    outputs = model.signatures[signature](images=tf.constant(images))
    return {name: value.numpy() for name, value in outputs.items()}


def _predict_request(images, signature="serving_default", name="drscreen", input_name="images"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(images))
    return request


def _assert_outputs_close(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)


def test_grpc_predict_encoded_images_matches_direct_call(server, direct):
    """serving_default over the official stubs equals the SavedModel called in-process."""
    encoded, _ = _images(3, seed=0)
    response = server.predictions.Predict(_predict_request(encoded), timeout=30)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    assert outputs["heatmap"].shape == (3, 16, 16)
    _assert_outputs_close(outputs, _direct(direct[1], "serving_default", encoded))


def test_grpc_float_signatures_and_output_filter(server, direct):
    """predict_float and predict_score answer their own outputs; output_filter selects."""
    _, pixels = _images(2, seed=1)
    for signature in ("predict_float", "predict_score"):
        response = server.predictions.Predict(_predict_request(pixels, signature), timeout=30)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        _assert_outputs_close(outputs, _direct(direct[1], signature, pixels))
    request = _predict_request(pixels, "predict_float")
    request.output_filter.append("score")
    response = server.predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["score"]


def test_rest_row_and_columnar_formats(server, direct):
    """Row format answers 'predictions' per instance, columnar answers 'outputs'."""
    encoded, pixels = _images(2, seed=2)
    expected = _direct(direct[1], "serving_default", encoded)
    rows = {"instances": [{"b64": base64.b64encode(e).decode()} for e in encoded]}
    status, body = _post(f"{server.url}/drscreen:predict", json.dumps(rows).encode())
    assert status == 200 and len(body["predictions"]) == 2
    for index, prediction in enumerate(body["predictions"]):
        assert sorted(prediction) == ["grade", "heatmap", "quality", "score"]
        np.testing.assert_allclose(prediction["score"], expected["score"][index], rtol=1e-6)
        np.testing.assert_allclose(prediction["heatmap"], expected["heatmap"][index], rtol=1e-5)
    columns = {"signature_name": "predict_score", "inputs": {"images": pixels.tolist()}}
    status, body = _post(f"{server.url}/drscreen/versions/1:predict", json.dumps(columns).encode())
    assert status == 200
    _assert_outputs_close(
        {k: np.float32(v) for k, v in body["outputs"].items()},
        _direct(direct[1], "predict_score", pixels),
    )


def test_clients_agree_with_direct_call_and_each_other(server, direct):
    """GrpcClient and RestClient return the same arrays, metadata and status."""
    encoded, pixels = _images(2, seed=3)
    rest = RestClient(server.rest_base, "drscreen")
    with GrpcClient(server.target, "drscreen") as grpc_client:
        for client in (grpc_client, rest):
            _assert_outputs_close(
                client.predict(encoded), _direct(direct[1], "serving_default", encoded)
            )
            outputs = client.predict(pixels, signature="predict_float")
            assert outputs["heatmap"].dtype == np.float32
            _assert_outputs_close(outputs, _direct(direct[1], "predict_float", pixels))
        assert grpc_client.metadata() == rest.metadata()
        assert grpc_client.status() == rest.status()


def test_metadata_describes_the_signatures(server):
    """Metadata lists every signature with its inputs' dtype and shape, as TF Serving does."""
    status, body = _get(f"{server.url}/drscreen/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "drscreen", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "predict_float", "predict_score"} <= set(signatures)
    image_input = signatures["serving_default"]["inputs"]["images"]
    assert image_input["dtype"] == "DT_STRING"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    float_input = signatures["predict_float"]["inputs"]["images"]
    assert [d["size"] for d in float_input["tensor_shape"]["dim"]] == ["-1", "16", "16", "3"]
    assert sorted(signatures["predict_score"]["outputs"]) == ["grade", "quality", "score"]
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "drscreen"
    response = server.predictions.GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert signature_map.signature_def["predict_float"].inputs["images"].dtype == tf.float32
    assert response.model_spec.version.value == 1


def test_metadata_carries_the_versions_model_card(server):
    """REST metadata and the gRPC ``model_card`` field return the card on disk; both clients
    read it; an unknown field is refused by name."""
    status, body = _get(f"{server.url}/drscreen/metadata")
    assert status == 200 and body["metadata"]["model_card"] == MODEL_CARD
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["model_card"])
    request.model_spec.name = "drscreen"
    response = server.predictions.GetModelMetadata(request, timeout=30)
    card = wrappers_pb2.StringValue()
    assert response.metadata["model_card"].Unpack(card)
    assert json.loads(card.value) == MODEL_CARD
    assert "signature_def" not in response.metadata
    assert RestClient(server.rest_base, "drscreen").model_card() == MODEL_CARD
    with GrpcClient(server.target, "drscreen") as grpc_client:
        assert grpc_client.model_card() == MODEL_CARD
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["weights"])
    request.model_spec.name = "drscreen"
    with pytest.raises(grpc.RpcError) as raised:
        server.predictions.GetModelMetadata(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "weights" in raised.value.details()


def test_status_reports_the_available_version(server):
    """GetModelStatus and GET /v1/models/<name> report version 1 AVAILABLE."""
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _get(f"{server.url}/drscreen") == (200, expected)
    assert _get(f"{server.url}/drscreen/versions/1") == (200, expected)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "drscreen"
    response = server.models.GetModelStatus(request, timeout=30)
    (entry,) = response.model_version_status
    assert entry.version == 1 and entry.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


BAD_GRPC_REQUESTS = {
    "malformed image": (
        lambda: _predict_request([b"not an image"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unknown image file format",
    ),
    "wrong signature": (
        lambda: _predict_request(_images(1, 0)[0], signature="classify"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "signature 'classify' not found",
    ),
    "wrong input name": (
        lambda: _predict_request(_images(1, 0)[0], input_name="image"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unexpected ['image']",
    ),
    "wrong dtype": (
        lambda: _predict_request(np.zeros((1, 16, 16, 3), np.int32), "predict_float"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must be float32, got int32",
    ),
    "wrong shape": (
        lambda: _predict_request(np.zeros((1, 8, 8, 3), np.float32), "predict_float"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must have shape (None, 16, 16, 3), got (1, 8, 8, 3)",
    ),
    "unknown model": (
        lambda: _predict_request(_images(1, 0)[0], name="other"),
        grpc.StatusCode.NOT_FOUND,
        "model 'other' is not served",
    ),
    "oversized": (
        lambda: _predict_request(np.zeros((30, 16, 16, 3), np.float64)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GRPC_REQUESTS))
def test_grpc_bad_request_is_rejected_and_server_keeps_serving(server, case):
    """Each bad request gets its status code and a clear message; the next request works."""
    make_request, code, message = BAD_GRPC_REQUESTS[case]
    request = make_request()
    if case == "oversized":
        request.inputs["images"].tensor_content = b"\0" * (MAX_REQUEST_BYTES + 1)
    with pytest.raises(grpc.RpcError) as raised:
        server.predictions.Predict(request, timeout=30)
    assert raised.value.code() == code
    assert message in raised.value.details()
    response = server.predictions.Predict(_predict_request(_images(1, 0)[0]), timeout=30)
    assert response.outputs["score"].float_val


def test_grpc_unknown_version_is_not_found(server):
    """A version that is not served is NOT_FOUND."""
    request = _predict_request(_images(1, 0)[0])
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as raised:
        server.predictions.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "version 7" in raised.value.details()


def _b64_rows(encoded: list[bytes]) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in encoded]})


BAD_REST_REQUESTS = {
    "malformed image": ("drscreen:predict", _b64_rows([b"junk"]), 400, "Unknown image file"),
    "malformed json": ("drscreen:predict", "{", 400, "JSON Parse error"),
    "wrong signature": (
        "drscreen:predict",
        json.dumps({"signature_name": "nope", "instances": [[0.0]]}),
        400,
        "signature 'nope' not found",
    ),
    "wrong input name": (
        "drscreen:predict",
        json.dumps({"inputs": {"pixels": [{"b64": ""}]}}),
        400,
        "input 'pixels' is not an input",
    ),
    "wrong dtype": (
        "drscreen:predict",
        json.dumps({"signature_name": "predict_float", "instances": [[[["a"] * 3] * 16] * 16]}),
        400,
        "Type: String is not of expected type: float32",
    ),
    "wrong shape": (
        "drscreen:predict",
        json.dumps({"signature_name": "predict_float", "inputs": [[[0.0, 0.0, 0.0]]]}),
        400,
        "must have shape (None, 16, 16, 3), got (1, 1, 3)",
    ),
    "unknown model": ("other:predict", _b64_rows([b"x"]), 404, "model 'other' is not served"),
    "unknown version": ("drscreen/versions/7:predict", _b64_rows([b"x"]), 404, "version 7"),
    "oversized": ("drscreen:predict", " " * (MAX_REQUEST_BYTES + 1), 413, "exceeds the limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REST_REQUESTS))
def test_rest_bad_request_is_rejected_and_server_keeps_serving(server, case):
    """Each bad REST request gets TF Serving's HTTP status and {"error": ...}."""
    path, body, status, message = BAD_REST_REQUESTS[case]
    code, answer = _post(f"{server.url}/{path}", body.encode())
    assert code == status
    assert message in answer["error"]
    code, answer = _post(f"{server.url}/drscreen:predict", _b64_rows(_images(1, 0)[0]).encode())
    assert code == 200 and len(answer["predictions"]) == 1


def _raw_http(server, request: bytes) -> tuple[int, dict]:
    """Send raw bytes to the REST port; the status and JSON body of the answer."""
    with socket.create_connection(server.rest_address, timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _post_request(path: str, body: bytes, length: bytes | None = None) -> bytes:
    length = str(len(body)).encode() if length is None else length
    return (
        b"POST /v1/models/" + path.encode() + b" HTTP/1.1\r\nHost: test\r\n"
        b"Connection: close\r\nContent-Length: " + length + b"\r\n\r\n" + body
    )


HOSTILE_REST_REQUESTS = {
    "content-length not a number": (
        _post_request("drscreen:predict", b"{}", length=b"abc"),
        400,
        "Content-Length is invalid",
    ),
    "100,000 levels of nested JSON": (
        _post_request(
            "drscreen:predict", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ),
        400,
        "nested too deeply",
    ),
    "null as a float": (
        _post_request(
            "drscreen:predict",
            json.dumps(
                {"signature_name": "predict_float", "instances": [[[[None, 0.0, 0.0]] * 16] * 16]}
            ).encode(),
        ),
        400,
        "Type: Null is not of expected type: float32",
    ),
    "true as a float": (
        _post_request(
            "drscreen:predict",
            json.dumps(
                {"signature_name": "predict_float", "inputs": [[[[True] * 3] * 16] * 16]}
            ).encode(),
        ),
        400,
        "Type: Bool is not of expected type: float32",
    ),
    "empty body": (_post_request("drscreen:predict", b""), 400, "The document is empty"),
    "unicode model name": (
        _post_request("d%C3%A9pistage%20b:predict", b"{}"),
        404,
        "model 'dépistage b' is not served",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_REST_REQUESTS))
def test_rest_hostile_request_gets_a_json_answer(server, case):
    """Malformed HTTP and JSON are answered with TF Serving's status and {"error": ...}."""
    request, status, message = HOSTILE_REST_REQUESTS[case]
    code, answer = _raw_http(server, request)
    assert code == status
    assert message in answer["error"]


def test_slow_clients_do_not_delay_valid_requests(server):
    """8 idle connections, 8 unsent bodies and a half-sent header: valid requests take < 1 s.

    The REST server has 8 worker threads; each slow connection would hold one with a
    thread-per-connection server. The slow connections are closed after the REST timeout.
    """
    slow = [socket.create_connection(server.rest_address) for _ in range(8)]
    for _ in range(8):
        sock = socket.create_connection(server.rest_address)
        sock.sendall(_post_request("drscreen:predict", b"{", length=b"100000"))
        slow.append(sock)
    slow.append(socket.create_connection(server.rest_address))
    slow[-1].sendall(b"GET /v1/models/drscreen HTTP/1.1\r\nHost:")
    try:
        valid = _b64_rows(_images(1, 0)[0]).encode()
        for _ in range(3):
            start = time.monotonic()
            code, answer = _post(f"{server.url}/drscreen:predict", valid)
            assert code == 200 and len(answer["predictions"]) == 1
            assert time.monotonic() - start < 1.0
            start = time.monotonic()
            assert _get(f"{server.url}/drscreen")[0] == 200
            assert time.monotonic() - start < 1.0
        for sock in slow:
            sock.settimeout(REST_TIMEOUT_SECONDS + 10)
            assert sock.recv(1024) == b""  # closed by the server, without an answer
    finally:
        for sock in slow:
            sock.close()


def test_concurrent_requests_are_batched_and_split_correctly(server, direct):
    """Eight concurrent clients (one sending a corrupt image) each get their own answer."""
    requests = [_images(1 + i % 3, seed=10 + i)[0] for i in range(8)]
    requests[5] = [b"corrupt"]

    def send(images: list[bytes]):
        try:
            response = server.predictions.Predict(_predict_request(images), timeout=60)
        except grpc.RpcError as error:
            return error.code()
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, requests))
    assert results[5] == grpc.StatusCode.INVALID_ARGUMENT
    for index, (images, result) in enumerate(zip(requests, results, strict=True)):
        if index != 5:
            _assert_outputs_close(result, _direct(direct[1], "serving_default", images))


def test_bounded_load_with_malformed_requests_fails_no_valid_request(server):
    """1,000 requests from 8 clients (half gRPC, half REST), one in ten malformed: no valid
    request fails and every malformed one is refused as a bad request (figures:
    bench/server_load.py, BENCHMARKS.md)."""
    photograph = _images(1, seed=7)[0][0]
    result = run_load(server.target, server.rest_base, photograph, 1000, 8, malformed_every=10)
    assert (result.valid_failures, result.malformed_accepted) == (0, 0)
    assert len(result.latencies) == 900


def test_query_example_writes_overlays(server, tmp_path):
    """query_example.py prints the quality and maps each heatmap back onto the photograph."""
    photo = np.zeros((100, 160, 3), np.uint8)
    cv2.circle(photo, (100, 50), 45, (40, 90, 200), -1)  # an off-centre orange disc (BGR)
    path = str(tmp_path / "eye.jpg")
    cv2.imwrite(path, photo)
    output_dir = str(tmp_path / "out")
    command = [
        sys.executable, os.path.join(REPO, "serving", "query_example.py"),
        f"--server={server.target}", f"--output_dir={output_dir}", path,
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "score=" in result.stdout and "quality=" in result.stdout
    panel = cv2.imread(os.path.join(output_dir, "eye_heatmap.png"))
    # The 100 x 160 px photograph enlarged x 3.2 pixel by pixel to a readable 320 x 512:
    # photograph | gap | heatmap on it | gap | scale.
    assert panel.shape == (320, 512 + 8 + 512 + 8 + 72, 3)
    plain, overlaid = panel[:, :512].astype(int), panel[:, 520:1032].astype(int)
    enlarged = cv2.resize(cv2.imread(path), (512, 320), interpolation=cv2.INTER_NEAREST)
    assert np.abs(plain - enlarged.astype(int)).max() <= 3
    # Left of the disc's square (columns < 55 x 3.2) the heatmap adds nothing; on the disc
    # it does.
    np.testing.assert_array_equal(overlaid[:, :150], plain[:, :150])
    assert np.abs(overlaid[:, 192:464] - plain[:, 192:464]).max() > 0


def test_new_version_is_picked_up_while_running(server, direct, exports):
    """Adding base/2 makes the server answer with version 2 and retire version 1."""
    copy_version(exports, 2, server.base, 2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {
            s["version"]: s["state"]
            for s in _get(f"{server.url}/drscreen")[1]["model_version_status"]
        }
        if states.get("2") == "AVAILABLE":
            break
        time.sleep(0.2)
    assert states == {"2": "AVAILABLE", "1": "END"}
    encoded, _ = _images(2, seed=5)
    response = server.predictions.Predict(_predict_request(encoded), timeout=30)
    assert response.model_spec.version.value == 2
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    _assert_outputs_close(outputs, _direct(direct[2], "serving_default", encoded))
    assert not np.allclose(
        outputs["score"], _direct(direct[1], "serving_default", encoded)["score"]
    )
    with GrpcClient(server.target, "drscreen") as client, pytest.raises(ServingError) as raised:
        client.predict(encoded, version=1)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_sigterm_shuts_down_cleanly(server):
    """SIGTERM stops the server gracefully with exit code 0."""
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
