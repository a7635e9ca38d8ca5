"""The shared request path: value checks of float images and naming the element that failed."""

import os
import threading
import weakref

import cv2
import grpc
import numpy as np
import pytest

from drscreen.export.saved_model import DESCRIPTION_FILE
from drscreen.serving import memory
from drscreen.serving.batching import BatchingConfig
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import (
    EXPORT_DESCRIPTION_FILE,
    InputRange,
    ModelStore,
    read_input_range,
)
from drscreen.serving.predictor import LARGE_REQUEST_BYTES, Prediction, Predictor
from drscreen.serving.tensors import proto_tensor, to_tensor_proto


@pytest.fixture(scope="module", params=[False, True], ids=["unbatched", "batched"])
def predictor(exports, request):
    store = ModelStore("drscreen", exports, poll_wait_seconds=0)
    store.start()
    batching = BatchingConfig(max_batch_size=8, batch_timeout_micros=0) if request.param else None
    predictor = Predictor(store, batching)
    yield predictor
    predictor.close()


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


def _predict(predictor: Predictor, signature: str, images: np.ndarray) -> Prediction:
    """Predict as the gRPC front end does: from the TensorProto of ``images``."""
    inputs = {"images": proto_tensor(to_tensor_proto(images), "images")}
    return predictor.predict(predictor.resolve("drscreen", None), signature, inputs)


def _rejection(predictor, signature: str, images) -> str:
    with pytest.raises(ServingError) as raised:
        _predict(predictor, signature, images)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return raised.value.message


def test_a_failed_batch_names_the_element_that_failed(predictor):
    """A corrupt third image in a batch of four is reported as element 2 of 4."""
    images = np.array([_png(0), _png(1), b"not an image", _png(3)], dtype=object)
    message = _rejection(predictor, "serving_default", images)
    assert "rejected element 2 of 4" in message and "Unknown image file format" in message
    good = _predict(predictor, "serving_default", images[[0, 1, 3]])
    assert good.outputs["score"].shape == (3,)


@pytest.mark.parametrize(
    ("value", "problem"),
    [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (1e6, "values from 0 to 1e+06"),
     (-1.0, "values from -1 to 0")],
)  # fmt: skip
def test_float_images_outside_the_declared_range_are_rejected(predictor, value, problem):
    """NaN, inf and pixels outside [0, 255] are INVALID_ARGUMENT naming the element."""
    images = np.zeros((3, 16, 16, 3), np.float32)
    images[1, 4, 5, 2] = value
    for signature in ("predict_float", "predict_score"):
        message = _rejection(predictor, signature, images)
        assert f"element 1: {problem}" in message and "must lie in [0, 255]" in message
    images[1, 4, 5, 2] = 255.0
    assert _predict(predictor, "predict_float", images).outputs


def test_input_range_comes_from_the_export_description(exports, tmp_path):
    """The server reads the file the exporter writes; without it no range is enforced."""
    assert EXPORT_DESCRIPTION_FILE == DESCRIPTION_FILE
    assert read_input_range(os.path.join(exports, "2")) == InputRange("images", 0.0, 255.0)
    assert read_input_range(str(tmp_path)) is None
    (tmp_path / EXPORT_DESCRIPTION_FILE).write_text('{"input": {"name": "images"}}')
    with pytest.raises(ValueError, match="no valid input name and range"):
        read_input_range(str(tmp_path))


def test_large_requests_never_hold_every_compute_slot(exports):
    """With two slots, a request over 8 MiB decoding makes a second large one wait, while a
    small one still gets the other slot at once."""
    store = ModelStore("drscreen", exports, poll_wait_seconds=0)
    store.start()
    predictor = Predictor(store, None, compute_slots=2)
    large = LARGE_REQUEST_BYTES + 1
    holding, release, decoded = threading.Event(), threading.Event(), []

    def hold() -> None:
        holding.set()
        release.wait(30)

    holder = threading.Thread(target=predictor.decode_in_slot, args=(large, hold))
    second = threading.Thread(
        target=predictor.decode_in_slot, args=(large, lambda: decoded.append("large"))
    )
    holder.start()
    try:
        assert holding.wait(30)
        second.start()
        second.join(0.3)
        assert decoded == []  # waits for the large slot
        assert predictor.decode_in_slot(1024, lambda: "small") == "small"
    finally:
        release.set()
        holder.join()
    second.join(30)
    assert decoded == ["large"]


def test_a_refused_request_is_freed_before_memory_is_returned(exports, monkeypatch):
    """What a refused decode held (its parsed body) is gone when the server hands memory back
    to the system, which it does only when the decode grew the process by over 64 MiB."""
    store = ModelStore("drscreen", exports, poll_wait_seconds=0)
    store.start()
    predictor = Predictor(store, None, compute_slots=1)
    resident = iter([0, 65 * 2**20, 0, 63 * 2**20])  # two decodes: before and after each
    alive, alive_when_returned = weakref.WeakSet(), []
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(resident))
    monkeypatch.setattr(
        memory, "return_free_memory", lambda: alive_when_returned.append(len(alive))
    )

    def refuse() -> None:
        body = _Body()
        alive.add(body)
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"refused {len(alive)}")

    with pytest.raises(ServingError, match="refused 1") as raised:
        predictor.decode_in_slot(1024, refuse)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert alive_when_returned == [0]
    predictor.decode_in_slot(1024, lambda: None)  # grew 63 MiB: kept for reuse
    assert alive_when_returned == [0]


class _Body:
    """Stands in for a parsed request body (weakly referenceable)."""
