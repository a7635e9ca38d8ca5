"""Version discovery, loading, pick-up of new versions and status of the model store."""

import os
import shutil
import threading

import grpc
import pytest

from drscreen.models import model_card
from drscreen.serving import model_store
from drscreen.serving.errors import ServingError
from drscreen.serving.model_store import ModelStore, VersionStatus, list_versions


def _add(exports: str, base: str, version: int) -> None:
    shutil.copytree(os.path.join(exports, str(version)), os.path.join(base, str(version)))


def _store_serving_version_1(exports: str, base: str, **retries) -> ModelStore:
    _add(exports, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0, **retries)
    store.start()
    return store


def test_list_versions_keeps_integer_directories_with_a_saved_model(exports, tmp_path):
    """Only digit-named directories holding saved_model.pb count; newest last."""
    base = str(tmp_path)
    _add(exports, base, 2)
    _add(exports, base, 1)
    os.makedirs(os.path.join(base, "10"))
    os.makedirs(os.path.join(base, "latest"))
    assert list_versions(base) == [1, 2]
    assert list_versions(os.path.join(base, "missing")) == []


def test_store_serves_newest_and_follows_new_versions(exports, tmp_path):
    """Version 1 is served, then version 2 replaces it after a poll; 1 becomes END."""
    base = str(tmp_path)
    _add(exports, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0)
    store.start()
    model = store.get(None)
    assert model.version == 1 and store.get(1) is model
    assert {"serving_default", "predict_float", "predict_score"} <= set(model.functions)
    assert model.signature_defs["predict_float"].method_name == "tensorflow/serving/predict"
    _add(exports, base, 2)
    store.poll_once()
    assert store.get(None).version == 2
    assert store.statuses() == [VersionStatus(2, "AVAILABLE"), VersionStatus(1, "END")]
    with pytest.raises(ServingError) as raised:
        store.get(1)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    store.stop()


def test_broken_version_is_reported_and_the_old_one_kept(exports, tmp_path):
    """A version that fails to load is END with its error; serving continues on version 1."""
    base = str(tmp_path)
    store = _store_serving_version_1(
        exports, base, max_num_load_retries=2, load_retry_interval_seconds=0.01
    )
    os.makedirs(os.path.join(base, "3"))
    with open(os.path.join(base, "3", "saved_model.pb"), "wb") as file:
        file.write(b"not a protobuf")
    store.poll_once()
    assert store.get(None).version == 1
    (status,) = store.statuses(3)
    assert status.state == "END" and "failed to load (attempt 3 of 3)" in status.error
    with pytest.raises(ServingError, match="could not find version 9"):
        store.statuses(9)


def _half_copy(exports: str, base: str, version: int) -> str:
    """base/<version> with saved_model.pb but no variables yet, as a copy caught midway."""
    target = os.path.join(base, str(version))
    os.makedirs(target)
    shutil.copy(os.path.join(exports, str(version), "saved_model.pb"), target)
    return target


def test_half_copied_version_is_retried_until_the_copy_completes(exports, tmp_path):
    """A version caught half-copied loads on a later attempt, as with TF Serving's retries."""
    base = str(tmp_path)
    store = _store_serving_version_1(
        exports, base, max_num_load_retries=50, load_retry_interval_seconds=0.1
    )
    target = _half_copy(exports, base, 2)
    finish = threading.Timer(
        0.3,
        shutil.copytree,
        (os.path.join(exports, "2", "variables"), os.path.join(target, "variables")),
    )
    finish.start()
    store.poll_once()
    finish.join()
    assert store.get(None).version == 2
    assert store.statuses() == [VersionStatus(2, "AVAILABLE"), VersionStatus(1, "END")]


def test_version_that_failed_every_attempt_loads_once_it_is_copied_again(exports, tmp_path):
    """Retries spent: removing the version and copying it again (atomically) loads it."""
    base = str(tmp_path)
    store = _store_serving_version_1(exports, base, max_num_load_retries=0)
    target = _half_copy(exports, base, 2)
    store.poll_once()
    assert store.statuses(2)[0].error and store.get(None).version == 1
    store.poll_once()
    assert store.get(None).version == 1  # no attempts left: not retried
    shutil.rmtree(target)
    store.poll_once()
    _add(exports, base, 2)
    store.poll_once()
    assert store.get(None).version == 2


def test_stop_interrupts_the_wait_between_attempts(exports, tmp_path):
    """stop() does not wait out a one-hour retry interval."""
    base = str(tmp_path)
    _half_copy(exports, base, 1)
    store = ModelStore("drscreen", base, poll_wait_seconds=0, load_retry_interval_seconds=3600.0)
    loader = threading.Thread(target=store.start)
    loader.start()
    store.stop()
    loader.join(timeout=10)
    assert not loader.is_alive()
    assert store.statuses(1)[0].error


def test_empty_base_path_has_no_available_version(tmp_path):
    """Before any version exists, requests are NOT_FOUND with the base path named."""
    store = ModelStore("drscreen", str(tmp_path), poll_wait_seconds=0)
    store.start()
    with pytest.raises(ServingError, match="no available version") as raised:
        store.get(None)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_versions_model_card_is_read_and_a_truncated_one_fails_the_load(exports, tmp_path):
    """The card a version carries is served with it (the file name is the exporter's); a card
    cut short fails that version by name and version 1 stays served."""
    assert model_store.MODEL_CARD_FILE == model_card.MODEL_CARD_FILE
    base = str(tmp_path)
    _add(exports, base, 1)
    with open(os.path.join(base, "1", model_store.MODEL_CARD_FILE), "w") as file:
        file.write('{"warning": "not for clinical use"}')
    store = ModelStore("drscreen", base, poll_wait_seconds=0, max_num_load_retries=0)
    store.start()
    assert store.get(None).model_card == {"warning": "not for clinical use"}
    _add(exports, base, 2)
    with open(os.path.join(base, "2", model_store.MODEL_CARD_FILE), "w") as file:
        file.write('{"warning": "not for cli')
    store.poll_once()
    assert store.get(None).version == 1
    (status,) = store.statuses(2)
    assert status.state == "END"
    assert "model_card.json: not a readable JSON model card" in status.error
    store.stop()
