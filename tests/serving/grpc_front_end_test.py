"""The gRPC front end in this process, over a predictor whose predictions wait to be released."""

import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from drscreen.serving.grpc_server import GrpcServer
from drscreen.serving.model_store import VersionStatus
from drscreen.serving.predictor import Prediction
from drscreen.serving.server import ModelServer, ServerConfig
from tests.serving.served_process import copy_version, free_port


class _HeldPredictor:
    """Stands in for `Predictor`: each prediction waits for `release`, then scores 0.5."""

    def __init__(self):
        self.release = threading.Event()
        self.running = threading.Semaphore(0)

    def resolve(self, model_name, version):
        return None

    def predict(self, model, signature_name, inputs, output_filter, request_bytes):
        self.running.release()
        self.release.wait(30)
        return Prediction(1, signature_name, {"score": np.full(1, 0.5, np.float32)})

    def status(self, model_name, version):
        return [VersionStatus(1, "AVAILABLE")]


@pytest.fixture
def held():
    """A GrpcServer with one prediction worker over a `_HeldPredictor`, and a channel to it."""
    predictor = _HeldPredictor()
    port = free_port()
    server = GrpcServer(predictor, "127.0.0.1", port, max_workers=1, max_request_bytes=1 << 20)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield predictor, channel
    predictor.release.set()
    channel.close()
    server.stop(0).result(timeout=30)


def _request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "drscreen"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.array([b"x"], dtype=object)))
    return request


def test_predictions_beyond_four_per_worker_are_refused_at_once(held):
    """One worker: four predictions are admitted (one running, three queued), the fifth is
    RESOURCE_EXHAUSTED at once, and status still answers; once released the four succeed."""
    predictor, channel = held
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    admitted = [predictions.Predict.future(_request(), timeout=30) for _ in range(4)]
    assert predictor.running.acquire(timeout=10)
    time.sleep(0.3)  # the three others reach the queue
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        predictions.Predict(_request(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "drscreen"
    model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=5)
    assert time.monotonic() - start < 2.0
    predictor.release.set()
    for call in admitted:
        assert tf.make_ndarray(call.result().outputs["score"]).tolist() == [0.5]


def test_a_port_in_use_is_a_clear_error_and_stop_still_works(exports, tmp_path):
    """Starting on a bound port raises RuntimeError naming the address; stop() after it does
    not raise (it used to fail on the server that never started, hiding the error)."""
    copy_version(exports, 1, str(tmp_path), 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServerConfig(
            "drscreen", str(tmp_path), port=port, rest_api_port=free_port(),
            file_system_poll_wait_seconds=0,
        )  # fmt: skip
        server = ModelServer(config)
        with pytest.raises(RuntimeError, match=f"cannot bind gRPC to 127.0.0.1:{port}"):
            server.start()
        server.stop()
