"""Versions of one exported model on disk: discovery, loading, polling and status.

Owns the "latest version" policy of TensorFlow Serving: under ``base_path`` every
integer-named directory holding a ``saved_model.pb`` is a version; the newest one is served.
A poll thread picks up new versions while the server runs, loading the new one before the old
one is released so a version is always available. What is served always matches the disk: a
version whose directory disappears is unloaded (as TensorFlow Serving does), and one whose
files changed (replaced in place: ``rm -rf base/1`` and a new export numbered 1 between two
polls) is unloaded and loaded again, never served stale. A version is recognised by the
fingerprint of its files (path, inode, size and modification time of each).

A version that fails to load (caught half-copied, truncated, anything
`tf.saved_model.load` raises) is logged with the reason and retried as TensorFlow Serving
does (``max_num_load_retries`` more attempts, ``load_retry_interval_micros`` apart); the
retries stop early when a newer version appears or the directory disappears, and once they
are spent the version stays failed until its files change. No failure stops the poll thread.
Models are loaded with `tf.saved_model.load` only (no pickles); signature metadata is read
from the SavedModel proto, and the version's model card (``model_card.json``, written by
``drscreen export``) with it. Knows nothing about the network protocols.
"""

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import tensorflow as tf
from google.protobuf import message
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from drscreen.serving.errors import ServingError

_LOG = logging.getLogger(__name__)
# What a drscreen export computes (`drscreen.export.saved_model.DESCRIPTION_FILE`; not imported,
# so serving does not need the export converters installed).
EXPORT_DESCRIPTION_FILE = "drscreen_export.json"
MODEL_CARD_FILE = "model_card.json"
"""`drscreen.models.model_card.MODEL_CARD_FILE`, as the export writes it in a version."""


@dataclasses.dataclass(frozen=True)
class InputRange:
    """Values a float input must lie in (a drscreen export declares [0, 255] for ``images``)."""

    name: str
    low: float
    high: float


@dataclasses.dataclass(frozen=True, eq=False)
class ModelVersion:
    """One loaded version of the model.

    Attributes
    ----------
    version:
        The integer version (the directory name).
    path:
        The SavedModel directory.
    signature_defs:
        Every `SignatureDef` of the SavedModel, as TensorFlow Serving reports them.
    functions:
        Callable signature name to concrete function (keyword tensors in, dict out).
    loaded:
        The object `tf.saved_model.load` returned; kept so its variables stay alive.
    fingerprint:
        `version_fingerprint` of the directory, taken before it was loaded.
    input_range:
        The range the export's description declares for its float image input, if any.
    model_card:
        The version's ``model_card.json`` (None for an export without one).
    """

    version: int
    path: str
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., dict]]
    loaded: Any
    fingerprint: tuple
    input_range: InputRange | None = None
    model_card: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """State of one version as `ModelService.GetModelStatus` reports it.

    ``state`` is one of ``LOADING``, ``AVAILABLE``, ``UNLOADING``, ``END``; ``error`` is empty
    unless loading the version failed (while it waits for a retry: the last attempt's error).
    """

    version: int
    state: str
    error: str = ""


def list_versions(base_path: str) -> list[int]:
    """Integer versions under ``base_path`` that hold a ``saved_model.pb``, ascending."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(entry)
        for entry in os.listdir(base_path)
        if entry.isdigit() and os.path.isfile(os.path.join(base_path, entry, "saved_model.pb"))
    )


def version_fingerprint(path: str) -> tuple | None:
    """Relative path, inode, size and modification time of every file under ``path``, sorted.

    Two equal fingerprints mean the same files; a copy, a re-export or an edit changes it.
    ``None`` when the directory is gone.
    """
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            file_path = os.path.join(root, name)
            try:
                info = os.stat(file_path)
            except FileNotFoundError:  # removed while walking: the next poll sees the rest
                continue
            relative = os.path.relpath(file_path, path)
            entries.append((relative, info.st_ino, info.st_size, info.st_mtime_ns))
    if not entries and not os.path.isdir(path):
        return None
    return tuple(sorted(entries))


def load_version(base_path: str, version: int) -> ModelVersion:
    """Load ``base_path/<version>`` with `tf.saved_model.load` and read its signatures."""
    path = os.path.join(base_path, str(version))
    fingerprint = version_fingerprint(path)
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        try:
            proto.ParseFromString(file.read())
        except message.DecodeError as error:
            raise ValueError(f"{path}/saved_model.pb is not a SavedModel proto: {error}") from error
    if len(proto.meta_graphs) != 1:
        raise ValueError(f"{path}: expected one MetaGraph, found {len(proto.meta_graphs)}")
    input_range = read_input_range(path)
    model_card = read_model_card(path)
    loaded = tf.saved_model.load(path)
    return ModelVersion(
        version=version,
        path=path,
        signature_defs=dict(proto.meta_graphs[0].signature_def),
        functions={name: loaded.signatures[name] for name in loaded.signatures},
        loaded=loaded,
        fingerprint=fingerprint,
        input_range=input_range,
        model_card=model_card,
    )


def read_input_range(path: str) -> InputRange | None:
    """The float input range declared by ``path/drscreen_export.json`` (None without one)."""
    description_path = os.path.join(path, EXPORT_DESCRIPTION_FILE)
    if not os.path.isfile(description_path):
        return None
    try:
        with open(description_path, encoding="utf-8") as file:
            declared = json.load(file)["input"]
        low, high = (float(value) for value in declared["range"])
        return InputRange(str(declared["name"]), low, high)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{description_path}: no valid input name and range ({error})") from error


def read_model_card(path: str) -> dict | None:
    """``path/model_card.json`` (None without one); a card that is not a JSON object is a
    load failure, as a half-copied version is."""
    card_path = os.path.join(path, MODEL_CARD_FILE)
    if not os.path.isfile(card_path):
        return None
    try:
        with open(card_path, encoding="utf-8") as file:
            card = json.load(file)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{card_path}: not a readable JSON model card ({error})") from error
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: a model card is a JSON object, got {type(card).__name__}")
    return card


class ModelStore:
    """Serves the newest version of one model and follows the versions on disk.

    Parameters
    ----------
    name:
        The model name clients use.
    base_path:
        Directory holding the integer version directories.
    poll_wait_seconds:
        Seconds between file-system polls; 0 polls once at `start` (TensorFlow Serving's
        ``--file_system_poll_wait_seconds``).
    max_num_load_retries:
        Further attempts after a version failed to load (TensorFlow Serving's flag, default 5).
    load_retry_interval_seconds:
        Wait before each retry (TensorFlow Serving's ``--load_retry_interval_micros``, default
        one minute). The old version keeps serving meanwhile; `request_stop` interrupts the
        wait, and so does a newer version or the removal of the directory.
    """

    def __init__(
        self,
        name: str,
        base_path: str,
        poll_wait_seconds: float,
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
    ):
        self.name = name
        self.base_path = base_path
        self.poll_wait_seconds = poll_wait_seconds
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_seconds = load_retry_interval_seconds
        self._lock = threading.Lock()
        self._current: ModelVersion | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._failed: dict[int, tuple | None] = {}  # version -> fingerprint that failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the newest version now, then keep polling in a background thread."""
        self._poll_logging_failures()
        if self.poll_wait_seconds > 0 and not self._stop.is_set():
            self._thread = threading.Thread(target=self._poll_loop, name="model-poll", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Ask polling and load retries to stop; returns at once (safe in a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling, waiting up to ``timeout`` seconds for a load in progress to end (the
        served version stays loaded until the store is dropped)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def poll_once(self) -> None:
        """Bring what is served in line with the disk.

        Unloads the served version if its directory is gone or its files changed, then loads
        the newest version unless it is served or failed with the same files.
        """
        versions = list_versions(self.base_path)
        fingerprints = {
            version: version_fingerprint(os.path.join(self.base_path, str(version)))
            for version in versions
        }
        with self._lock:
            self._failed = {
                version: fingerprint
                for version, fingerprint in self._failed.items()
                if version in fingerprints and fingerprints[version] == fingerprint
            }
        current = self._current
        if current is not None and fingerprints.get(current.version) != current.fingerprint:
            change = "was removed" if current.version not in versions else "changed on disk"
            self._unload(current, f"its directory {current.path} {change}")
            current = None
        if not versions:
            if current is None:
                _LOG.warning("no servable version of %r under %s yet", self.name, self.base_path)
            return
        newest = versions[-1]
        if (current is not None and current.version == newest) or newest in self._failed:
            return
        loaded = self._load_with_retries(newest)
        if loaded is None:
            return
        with self._lock:
            self._current = loaded
            self._statuses[newest] = VersionStatus(newest, "AVAILABLE")
            if current is not None:
                self._statuses[current.version] = VersionStatus(current.version, "END")
        _LOG.info("model %r: serving version %d from %s", self.name, newest, loaded.path)

    def get(self, version: int | None) -> ModelVersion:
        """The served version, optionally checking it is ``version``.

        Raises
        ------
        ServingError
            ``NOT_FOUND`` when no version is available or ``version`` is not the served one.
        """
        current = self._current
        if current is None:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{self.name}' has no available version (base path {self.base_path})",
            )
        if version is not None and version != current.version:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"version {version} of model '{self.name}' is not available (available:"
                f" {current.version})",
            )
        return current

    def statuses(self, version: int | None = None) -> list[VersionStatus]:
        """Status of every version seen (newest first), or of ``version`` only.

        Raises
        ------
        ServingError
            ``NOT_FOUND`` when ``version`` was never seen.
        """
        with self._lock:
            statuses = dict(self._statuses)
        if version is None:
            return [statuses[v] for v in sorted(statuses, reverse=True)]
        if version not in statuses:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"could not find version {version} of model '{self.name}'",
            )
        return [statuses[version]]

    def _unload(self, served: ModelVersion, reason: str) -> None:
        with self._lock:
            self._current = None
            self._statuses[served.version] = VersionStatus(served.version, "END")
        _LOG.warning("model %r: unloaded version %d: %s", self.name, served.version, reason)

    def _load_with_retries(self, version: int) -> ModelVersion | None:
        attempts = 1 + self.max_num_load_retries
        path = os.path.join(self.base_path, str(version))
        for attempt in range(1, attempts + 1):
            self._set_status(VersionStatus(version, "LOADING"))
            fingerprint = version_fingerprint(path)
            try:
                return load_version(self.base_path, version)
            # A half-copied or corrupt version can make tf.saved_model.load raise anything
            # (IndexError for a truncated variables file); none of it may stop the poller.
            except Exception as error:  # noqa: BLE001
                reason = f"failed to load (attempt {attempt} of {attempts}): {error!r}"
            _LOG.error("model %r version %d %s", self.name, version, reason)
            if attempt == attempts:
                break
            self._set_status(VersionStatus(version, "LOADING", reason))
            superseded = self._wait_before_retry(version)
            if superseded:
                reason = f"{reason}; not retried: {superseded}"
                _LOG.warning("model %r version %d not retried: %s", self.name, version, superseded)
                break
        with self._lock:
            self._failed[version] = fingerprint
            self._statuses[version] = VersionStatus(version, "END", reason)
        return None

    def _wait_before_retry(self, version: int) -> str:
        """Wait out the retry interval; why the retry should not happen ("" if it should)."""
        deadline = time.monotonic() + self.load_retry_interval_seconds
        step = self.poll_wait_seconds or self.load_retry_interval_seconds
        while True:
            if self._stop.wait(max(0.0, min(step, deadline - time.monotonic()))):
                return "the server is stopping"
            versions = list_versions(self.base_path)
            if version not in versions:
                return f"its directory {os.path.join(self.base_path, str(version))} was removed"
            if versions[-1] > version:
                return f"version {versions[-1]} appeared"
            if time.monotonic() >= deadline:
                return ""

    def _set_status(self, status: VersionStatus) -> None:
        with self._lock:
            self._statuses[status.version] = status

    def _poll_logging_failures(self) -> None:
        try:
            self.poll_once()
        # The poller must outlive anything the file system does (a directory removed while
        # it is read, permissions changed): log it and poll again.
        except Exception:  # noqa: BLE001
            _LOG.exception("model %r: polling %s failed", self.name, self.base_path)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            self._poll_logging_failures()
