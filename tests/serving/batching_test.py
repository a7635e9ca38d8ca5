"""Batcher merging and splitting, and the batching parameters file."""

import threading

import grpc
import numpy as np
import pytest

from drscreen.serving.batching import Batcher, BatchingConfig, parse_batching_parameters
from drscreen.serving.errors import ServingError


class _RecordingModel:
    """Doubles its input; fails on any negative value; records the batch sizes it saw."""

    def __init__(self):
        self.batch_sizes = []
        self._lock = threading.Lock()

    def __call__(self, inputs):
        with self._lock:
            self.batch_sizes.append(inputs["x"].shape[0])
        if (inputs["x"] < 0).any():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative input")
        return {"y": 2 * inputs["x"], "n": np.arange(inputs["x"].shape[0])}


def _submit_concurrently(batcher, model, requests):
    results = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def worker(index):
        start.wait()
        try:
            results[index] = batcher.submit("model", model, {"x": requests[index]})
        except ServingError as error:
            results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows():
    """Four requests of 1-3 rows inside the timeout make one call of 8 rows, split back."""
    model = _RecordingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=500_000))
    requests = [np.full((size, 2), i, np.float32) for i, size in enumerate([1, 3, 2, 2])]
    results = _submit_concurrently(batcher, model, requests)
    batcher.close()
    assert model.batch_sizes == [8]
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], 2 * request)
        assert result["n"].shape == (request.shape[0],)


def test_full_batch_closes_before_the_timeout_and_the_rest_follows():
    """With max_batch_size 4, six one-row requests need two calls of sizes summing to 6."""
    model = _RecordingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=4, batch_timeout_micros=200_000))
    results = _submit_concurrently(batcher, model, [np.ones((1, 2), np.float32)] * 6)
    batcher.close()
    assert sum(model.batch_sizes) == 6 and max(model.batch_sizes) <= 4
    assert all(np.array_equal(r["y"], np.full((1, 2), 2.0)) for r in results)


def test_a_failing_request_does_not_fail_its_batch_mates():
    """The merged call fails, so each request runs alone and only the bad one errs."""
    model = _RecordingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=500_000))
    requests = [np.ones((1, 2), np.float32), -np.ones((1, 2), np.float32), np.ones((2, 2))]
    requests[2] = requests[2].astype(np.float32)
    results = _submit_concurrently(batcher, model, requests)
    batcher.close()
    assert isinstance(results[1], ServingError)
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_array_equal(results[0]["y"], 2 * requests[0])
    np.testing.assert_array_equal(results[2]["y"], 2 * requests[2])


def test_requests_with_different_shapes_are_not_merged():
    """Rows of width 2 and 3 cannot be concatenated, so they run in separate calls."""
    model = _RecordingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=100_000))
    requests = [np.ones((1, 2), np.float32), np.ones((1, 3), np.float32)]
    results = _submit_concurrently(batcher, model, requests)
    batcher.close()
    assert model.batch_sizes == [1, 1]
    assert results[1]["y"].shape == (1, 3)


def test_full_queue_is_resource_exhausted_and_closed_batcher_unavailable():
    """Requests beyond max_enqueued_batches × max_batch_size rows are refused."""
    batcher = Batcher(BatchingConfig(max_batch_size=2, max_enqueued_batches=1))
    with pytest.raises(ServingError) as raised:
        batcher.submit("model", _RecordingModel(), {"x": np.ones((3, 1), np.float32)})
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    batcher.close()
    with pytest.raises(ServingError) as raised:
        batcher.submit("model", _RecordingModel(), {"x": np.ones((1, 1), np.float32)})
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_parse_batching_parameters_reads_tf_serving_text_proto():
    """Values in `name { value: N }` form, comments allowed, override the defaults."""
    text = "# tuned\nmax_batch_size { value: 16 }\nbatch_timeout_micros {value:0}\n"
    assert parse_batching_parameters(text) == BatchingConfig(
        max_batch_size=16, batch_timeout_micros=0
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("allowed_batch_sizes: 8", "cannot parse"),
        ("pad_width { value: 2 }", "unsupported parameter 'pad_width'"),
        ("max_batch_size { value: 0 }", "max_batch_size=0 must be >= 1"),
    ],
)
def test_parse_batching_parameters_rejects_what_it_cannot_honour(text, message):
    """Unknown, malformed or out-of-range parameters raise naming the file."""
    with pytest.raises(ValueError, match="params.txt") as raised:
        parse_batching_parameters(text, source="params.txt")
    assert message in str(raised.value)
