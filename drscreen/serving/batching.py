"""Server-side batching: merge concurrent requests into one model call, then split results.

Owns the batching policy of TensorFlow Serving's ``--enable_batching``: a batch opens with the
first queued request and closes when it holds ``max_batch_size`` examples or
``batch_timeout_micros`` have passed; only requests for the same servable whose inputs agree
beyond the batch dimension are merged. ``num_batch_threads`` threads run batches; at most
``max_enqueued_batches`` batches' worth of examples may wait, beyond that requests are refused
with ``RESOURCE_EXHAUSTED``. Also reads TensorFlow Serving's batching parameters file.
Knows nothing about models: it calls the function each request brings.
"""

import dataclasses
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping

import grpc
import numpy as np

from drscreen.serving.errors import ServingError

RunFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """Batching parameters, named as in TensorFlow Serving's ``batching_parameters_file``.

    Attributes
    ----------
    max_batch_size:
        Most examples in one model call (a larger request runs alone, unsplit).
    batch_timeout_micros:
        Longest wait, from the first request of a batch, for more requests to join it.
    num_batch_threads:
        Threads running batches in parallel.
    max_enqueued_batches:
        Queue bound, in batches of ``max_batch_size`` examples.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 0 if field.name == "batch_timeout_micros" else 1
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"batching parameter {field.name}={value!r} must be >= {minimum}")


_PARAMETER = re.compile(r"(\w+)\s*\{\s*value\s*:\s*(-?\d+)\s*\}")


def parse_batching_parameters(text: str, source: str = "batching parameters") -> BatchingConfig:
    """Read a TensorFlow Serving batching parameters file (text proto).

    Example::

        max_batch_size { value: 32 }
        batch_timeout_micros { value: 1000 }

    Raises
    ------
    ValueError
        Naming ``source`` and the offending entry, for unknown or malformed parameters.
    """
    known = {field.name for field in dataclasses.fields(BatchingConfig)}
    values = {}
    for match in _PARAMETER.finditer(text):
        name, value = match.group(1), int(match.group(2))
        if name not in known:
            raise ValueError(
                f"{source}: unsupported parameter {name!r} (supported: {sorted(known)})"
            )
        values[name] = value
    leftover = _PARAMETER.sub("", re.sub(r"#[^\n]*", "", text)).strip()
    if leftover:
        raise ValueError(f"{source}: cannot parse {leftover.splitlines()[0]!r}")
    try:
        return BatchingConfig(**values)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error


@dataclasses.dataclass(eq=False)
class _Pending:
    group: Hashable
    run: RunFn
    inputs: Mapping[str, np.ndarray]
    size: int
    enqueued: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: Exception | None = None


class Batcher:
    """Merges concurrent `submit` calls into batched calls of their run function.

    Parameters
    ----------
    config:
        The batching parameters.
    """

    def __init__(self, config: BatchingConfig):
        self.config = config
        self._queue: deque[_Pending] = deque()
        self._queued_examples = 0
        self._cond = threading.Condition()
        self._closed = False
        # One batch is open at a time: threads take turns forming batches, then run in parallel.
        self._forming = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(config.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, key: Hashable, run: RunFn, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Run ``run(inputs)`` as part of a batch and return this request's share of it.

        Parameters
        ----------
        key:
            Identifies the servable (e.g. version and signature); only requests with equal
            keys and equal per-example input shapes and dtypes are merged, and ``run`` of the
            batch's first request serves them all.
        run:
            Model call: batched inputs to outputs whose first dimension is the batch.
        inputs:
            Input name to array; all share the batch size in their first dimension.

        Raises
        ------
        ServingError
            ``RESOURCE_EXHAUSTED`` when the queue is full, ``UNAVAILABLE`` once closed; any
            error of ``run`` for this request is re-raised.
        """
        size = next(iter(inputs.values())).shape[0]
        group = (key, tuple((n, a.shape[1:], a.dtype.str) for n, a in sorted(inputs.items())))
        pending = _Pending(group, run, inputs, size, time.monotonic())
        limit = self.config.max_enqueued_batches * self.config.max_batch_size
        with self._cond:
            if self._closed:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
            if self._queued_examples + size > limit:
                raise ServingError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"batching queue is full ({self._queued_examples} examples waiting)",
                )
            self._queue.append(pending)
            self._queued_examples += size
            self._cond.notify_all()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.outputs

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the batch threads; waits up to ``timeout`` seconds
        (the threads are daemons: a batch still running then is abandoned with the process)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            with self._forming:
                batch = self._next_batch()
            if batch is None:
                return
            _run_batch(batch)

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, size = [first], first.size
            deadline = first.enqueued + self.config.batch_timeout_micros / 1e6
            while size < self.config.max_batch_size:
                size = self._take_compatible(batch, size)
                remaining = deadline - time.monotonic()
                if size >= self.config.max_batch_size or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            self._queued_examples -= size
            return batch

    def _take_compatible(self, batch: list[_Pending], size: int) -> int:
        for pending in list(self._queue):
            if pending.group != batch[0].group:
                continue
            if size + pending.size > self.config.max_batch_size:
                break
            self._queue.remove(pending)
            batch.append(pending)
            size += pending.size
        return size


def _run_batch(batch: list[_Pending]) -> None:
    """Run a batch in one call; if that fails, run its requests one by one.

    Running them alone when the merged call fails keeps one bad request (e.g. a corrupt
    JPEG) from failing the requests it happened to be batched with.
    """
    if len(batch) > 1:
        merged = {name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs}
        try:
            outputs = batch[0].run(merged)
            shares = _split(outputs, [p.size for p in batch])
        except Exception:  # noqa: BLE001 - each request is retried alone and gets its own error
            shares = None
        if shares is not None:
            for pending, share in zip(batch, shares, strict=True):
                pending.outputs = share
                pending.done.set()
            return
    for pending in batch:
        try:
            pending.outputs = pending.run(pending.inputs)
        except Exception as error:  # noqa: BLE001 - handed to the waiting request thread
            pending.error = error
        pending.done.set()


def _split(
    outputs: Mapping[str, np.ndarray], sizes: list[int]
) -> list[dict[str, np.ndarray]] | None:
    total = sum(sizes)
    if any(np.ndim(value) == 0 or value.shape[0] != total for value in outputs.values()):
        return None
    bounds = np.cumsum(sizes)[:-1]
    columns = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: parts[i] for name, parts in columns.items()} for i in range(len(sizes))]
