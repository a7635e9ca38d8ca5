"""What is served follows the disk: replaced, removed and broken versions never stop the store.

Each test builds its own base path from copies of the session's two fake exports (seeds 1 and
2, whose grades differ), so a version's weights are known from the directory it was copied
from; the reference outputs come from `tf.saved_model.load` of that directory.
"""

import logging
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from drscreen.serving import model_store
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import ModelStore, VersionStatus
from tests.serving.served_process import copy_version, truncate_variables

POLL_SECONDS = 0.05
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)


def _grades(function) -> np.ndarray:
    return function(images=tf.constant(IMAGES))["grade"].numpy()


@pytest.fixture(scope="module")
def reference(exports) -> dict[int, np.ndarray]:
    """Grades of IMAGES by each export, loaded directly."""
    return {
        seed: _grades(
            tf.saved_model.load(os.path.join(exports, str(seed))).signatures["predict_score"]
        )
        for seed in (1, 2)
    }


def _served(store: ModelStore):
    """The served version, or None while none is available."""
    try:
        return store.get(None)
    except ServingError:
        return None


def _served_grades(store: ModelStore) -> np.ndarray:
    return _grades(store.get(None).functions["predict_score"])


def _wait_for(condition, seconds: float = 20.0) -> float:
    """Poll ``condition`` until true; the seconds it took (fails the test after ``seconds``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "condition not reached in time"
        time.sleep(0.01)
    return time.monotonic() - start


def test_the_fixture_exports_differ(reference):
    """The two exports grade differently, so serving the wrong one cannot pass unnoticed."""
    assert np.abs(reference[1] - reference[2]).min() > 1e-3


def test_version_replaced_in_place_is_served_with_its_new_weights(exports, tmp_path, reference):
    """rm -rf base/1 and a new export numbered 1 between two polls: the new weights serve."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0)
    store.start()
    np.testing.assert_allclose(_served_grades(store), reference[1], rtol=1e-6)
    shutil.rmtree(os.path.join(base, "1"))
    copy_version(exports, 2, base, 1)
    store.poll_once()
    np.testing.assert_allclose(_served_grades(store), reference[2], rtol=1e-6)
    assert store.statuses() == [VersionStatus(1, "AVAILABLE")]


def test_replaced_version_is_picked_up_by_the_poll_thread_within_the_interval(
    exports, tmp_path, reference
):
    """With a 0.2 s poll, the replaced version serves within one interval plus its load."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0.2)
    store.start()
    try:
        served = store.get(None)
        shutil.rmtree(os.path.join(base, "1"))
        copy_version(exports, 2, base, 1)
        seconds = _wait_for(lambda: _served(store) not in (None, served))
        np.testing.assert_allclose(_served_grades(store), reference[2], rtol=1e-6)
        assert seconds < 0.2 + 5.0
    finally:
        store.stop()


def test_removed_version_is_unloaded(exports, tmp_path):
    """Deleting the served version's directory unloads it: NOT_FOUND, status END."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0)
    store.start()
    shutil.rmtree(os.path.join(base, "1"))
    store.poll_once()
    with pytest.raises(ServingError, match="has no available version"):
        store.get(None)
    assert store.statuses() == [VersionStatus(1, "END")]


def test_removing_the_newest_version_serves_the_one_below(exports, tmp_path, reference):
    """With 1 and 2 on disk and 2 removed, version 1 is loaded (latest policy on what is left)."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    copy_version(exports, 2, base, 2)
    store = ModelStore("drscreen", base, poll_wait_seconds=0)
    store.start()
    assert store.get(None).version == 2
    shutil.rmtree(os.path.join(base, "2"))
    store.poll_once()
    assert store.get(None).version == 1
    np.testing.assert_allclose(_served_grades(store), reference[1], rtol=1e-6)


def test_truncated_version_alone_at_start_is_reported_and_later_fixed(exports, tmp_path, caplog):
    """A truncated variables file (tf raises IndexError) is logged, END with the reason; copying
    the version again loads it."""
    base = str(tmp_path)
    truncate_variables(copy_version(exports, 1, base, 1))
    store = ModelStore(
        "drscreen", base, poll_wait_seconds=0, max_num_load_retries=1,
        load_retry_interval_seconds=0.01,
    )  # fmt: skip
    with caplog.at_level(logging.ERROR, logger=model_store.__name__):
        store.start()
    (status,) = store.statuses(1)
    assert status.state == "END" and "attempt 2 of 2" in status.error
    assert "IndexError" in status.error and "IndexError" in caplog.text
    store.poll_once()  # same files: not retried
    assert "attempt 2 of 2" in store.statuses(1)[0].error
    shutil.rmtree(os.path.join(base, "1"))
    copy_version(exports, 1, base, 1)
    store.poll_once()
    assert store.get(None).version == 1 and store.statuses(1)[0].state == "AVAILABLE"


def test_truncated_version_does_not_stop_a_newer_good_one(exports, tmp_path, reference):
    """Version 2 truncated (retried every minute), then a good version 3 appears: the poller
    abandons 2's retries and serves 3 within seconds."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    store = ModelStore(
        "drscreen", base, poll_wait_seconds=POLL_SECONDS, load_retry_interval_seconds=60.0
    )
    store.start()
    try:
        truncate_variables(copy_version(exports, 1, base, 2))
        _wait_for(lambda: "attempt 1 of 6" in store.statuses()[0].error)
        assert store.get(None).version == 1
        copy_version(exports, 2, base, 3)
        assert _wait_for(lambda: store.get(None).version == 3) < 10.0
        np.testing.assert_allclose(_served_grades(store), reference[2], rtol=1e-6)
        states = {status.version: status for status in store.statuses()}
        assert states[3].state == "AVAILABLE" and states[1].state == "END"
        assert "not retried: version 3 appeared" in states[2].error
    finally:
        store.stop()


def test_poll_thread_survives_a_failing_poll(exports, tmp_path, monkeypatch):
    """An exception while polling (here listing the base path) is logged; polling goes on."""
    base = str(tmp_path)
    copy_version(exports, 1, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=POLL_SECONDS)
    store.start()
    real_list_versions = model_store.list_versions
    failures = []

    def failing_once(path):
        if not failures:
            failures.append(path)
            raise PermissionError(f"{path}: permission denied")
        return real_list_versions(path)

    monkeypatch.setattr(model_store, "list_versions", failing_once)
    try:
        _wait_for(lambda: failures)
        copy_version(exports, 2, base, 2)
        _wait_for(lambda: store.get(None).version == 2)
    finally:
        store.stop()
