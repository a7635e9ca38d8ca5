"""The `tf.distribute` strategy of a run, and which worker writes the run directory.

- ``default``: the default (single-device) strategy.
- ``mirrored``: `tf.distribute.MirroredStrategy` over the local GPUs (CPU when none).
- ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`, cluster read from the
  ``TF_CONFIG`` environment variable; every worker runs the same `run(config)`. Each worker
  reads its own shard of the input (`worker_shard`, tf.data auto-sharding off, see
  `drscreen.training.data`) and Keras' `fit` splits its batches over the local replicas.
  Only the chief writes the run directory; the other workers write into
  ``RUN_DIR/workers/<type>-<index>`` (checkpoint writes are collective: all must write).
"""

import json
import os
from pathlib import Path

import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for config value `name` (``default``, ``mirrored``, ``multi_worker``)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--distribution=multi_worker needs the TF_CONFIG environment variable "
                '({"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}})'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown distribution {name!r}; expected default, mirrored or multi_worker")


def _task() -> tuple[str, int, bool]:
    """(task type, task index, whether the cluster has a separate chief) from ``TF_CONFIG``."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    has_chief = "chief" in tf_config.get("cluster", {})
    return task.get("type", "worker"), int(task.get("index", 0)), has_chief


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory.

    The ``chief`` task when the cluster has one, else worker 0; always true without a
    multi-worker strategy.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, index, has_chief = _task()
    return task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)


def writable_dir(model_dir: str | Path, strategy: tf.distribute.Strategy) -> Path:
    """The run directory for the chief, a scratch folder inside it for the other workers."""
    model_dir = Path(model_dir)
    if is_chief(strategy):
        return model_dir
    task_type, index, _ = _task()
    return model_dir / "workers" / f"{task_type}-{index}"


def worker_shard(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """(number of workers, this worker's index) for sharding the input per worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1, 0
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    workers = sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker"))
    offset = (
        spec.num_tasks("chief") if "chief" in spec.jobs and resolver.task_type == "worker" else 0
    )
    return workers, resolver.task_id + offset
