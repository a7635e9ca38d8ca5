"""Versions of one exported model on disk: discovery, loading, polling and status.

Owns the "latest version" policy of TensorFlow Serving: under ``base_path`` every
integer-named directory holding a ``saved_model.pb`` is a version; the newest one is served.
A poll thread picks up new versions while the server runs, loading the new one before the old
one is released so a version is always available. A version that fails to load (e.g. caught
half-copied) is retried as TensorFlow Serving does (``max_num_load_retries`` more attempts,
``load_retry_interval_micros`` apart); once they are spent it stays failed until its directory
disappears from the base path and comes back. Models are loaded with
`tf.saved_model.load` only (no pickles); signature metadata is read from the SavedModel proto.
Knows nothing about the network protocols.
"""

import dataclasses
import json
import logging
import os
import threading
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
    input_range:
        The range the export's description declares for its float image input, if any.
    """

    version: int
    path: str
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., dict]]
    loaded: Any
    input_range: InputRange | None = None


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """State of one version as `ModelService.GetModelStatus` reports it.

    ``state`` is one of ``LOADING``, ``AVAILABLE``, ``UNLOADING``, ``END``; ``error`` is empty
    unless loading the version failed.
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


def load_version(base_path: str, version: int) -> ModelVersion:
    """Load ``base_path/<version>`` with `tf.saved_model.load` and read its signatures."""
    path = os.path.join(base_path, str(version))
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        try:
            proto.ParseFromString(file.read())
        except message.DecodeError as error:
            raise ValueError(f"{path}/saved_model.pb is not a SavedModel proto: {error}") from error
    if len(proto.meta_graphs) != 1:
        raise ValueError(f"{path}: expected one MetaGraph, found {len(proto.meta_graphs)}")
    input_range = read_input_range(path)
    loaded = tf.saved_model.load(path)
    return ModelVersion(
        version=version,
        path=path,
        signature_defs=dict(proto.meta_graphs[0].signature_def),
        functions={name: loaded.signatures[name] for name in loaded.signatures},
        loaded=loaded,
        input_range=input_range,
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


class ModelStore:
    """Serves the newest version of one model and follows new versions on disk.

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
        one minute). The old version keeps serving meanwhile; `stop` interrupts the wait.
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
        self._failed: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the newest version now, then keep polling in a background thread."""
        self.poll_once()
        if self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (the served version stays loaded until the store is dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def poll_once(self) -> None:
        """Load the newest version on disk unless it is served or failed all its attempts."""
        versions = list_versions(self.base_path)
        with self._lock:
            self._failed &= set(versions)  # a failed version that was removed may come back
        if not versions:
            if self._current is None:
                _LOG.warning("no servable version of %r under %s yet", self.name, self.base_path)
            return
        newest = versions[-1]
        current = self._current
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
                f"model '{self.name}' has no available version yet (base path {self.base_path})",
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

    def _load_with_retries(self, version: int) -> ModelVersion | None:
        attempts = 1 + self.max_num_load_retries
        for attempt in range(1, attempts + 1):
            self._set_status(VersionStatus(version, "LOADING"))
            try:
                return load_version(self.base_path, version)
            except (OSError, ValueError, tf.errors.OpError) as error:
                reason = f"failed to load (attempt {attempt} of {attempts}): {error}"
            _LOG.error("model %r version %d %s", self.name, version, reason)
            if attempt == attempts or self._stop.wait(self.load_retry_interval_seconds):
                break
        with self._lock:
            self._failed.add(version)
            self._statuses[version] = VersionStatus(version, "END", reason)
        return None

    def _set_status(self, status: VersionStatus) -> None:
        with self._lock:
            self._statuses[status.version] = status

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            self.poll_once()
