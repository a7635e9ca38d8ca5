"""Training, validation and test data of a run, built from its `DataConfig`.

Two sources:

- ``synthetic``: the synthetic benchmark (`drscreen.data.synthetic`) in ``data_dir``, generated
  there first when it has no ``synth.json`` (written last, so a killed generation is redone);
  read with `drscreen.data.readers.read_dataset("synthetic", ...)` and split by patient with
  `drscreen.data.splits.split_by_patient`. Lesion masks are available for evaluation.
- ``tfrecords``: the shards written by ``drscreen prepare`` (its train/validation/test splits).

Batches come from `drscreen.data.pipeline` at the stage's image size. With several workers,
each worker reads its own shard of the data (`PipelineConfig.num_shards`/``shard_index``)
and tf.data auto-sharding is turned off, so `fit` sees per-worker global batches.
"""

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.augment import AugmentConfig
from drscreen.data.readers import read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.splits import split_by_patient
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.data.synthetic.writer import CONFIG_FILE
from drscreen.data.tfrecords import list_shards
from drscreen.training.config import DataConfig

Source = Sequence[FundusRecord] | str


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """The three splits: records (image files) or a ``prepare`` folder read by split name."""

    train: Source
    validation: Source
    test: Source
    num_train: int


def synthetic_dir(config: DataConfig, model_dir: str | Path) -> Path:
    """Folder of the synthetic benchmark: ``data_dir``, or ``RUN_DIR/data`` when empty."""
    return Path(config.data_dir) if config.data_dir else Path(model_dir) / "data"


def _synth_workers(n: int) -> int:
    """Worker processes for generating `n` images: each costs a Python start-up, so few."""
    return max(1, min(os.cpu_count() or 1, n // 100))


def _requested_synth(config: DataConfig) -> dict[str, int | str]:
    return {
        "n": config.synth_n,
        "size": config.synth_size,
        "seed": config.synth_seed,
        "difficulty": config.synth_difficulty,
    }


def _reuse_notice(out: Path, config: DataConfig) -> str | None:
    """A warning when the benchmark already in `out` differs from the --synth_* flags."""
    existing = json.loads((out / CONFIG_FILE).read_text())["config"]
    requested = _requested_synth(config)
    differences = [
        f"{key} {existing.get(key)} (flag: {value})"
        for key, value in requested.items()
        if existing.get(key) != value
    ]
    if not differences:
        return None
    return (
        f"warning: reusing the synthetic benchmark in {out}, which differs from the --synth_* "
        f"flags: {', '.join(differences)}; use a new --model_dir or --data_dir to regenerate"
    )


def ensure_synthetic(config: DataConfig, model_dir: str | Path) -> Path:
    """Generate the synthetic benchmark unless its folder already holds a complete one.

    An existing benchmark is reused as it is; when it was generated with other --synth_*
    values (e.g. an older run directory), a warning on stderr says so.
    """
    out = synthetic_dir(config, model_dir)
    if (out / CONFIG_FILE).is_file():
        notice = _reuse_notice(out, config)
        if notice:
            print(notice, file=sys.stderr)
        return out
    synth = SynthConfig.from_preset(
        config.synth_difficulty,
        n=config.synth_n,
        size=config.synth_size,
        seed=config.synth_seed,
    )
    print(f"generating {synth.n} synthetic images of {synth.size} px in {out}", file=sys.stderr)
    write_dataset(synth, out, workers=_synth_workers(synth.n))
    return out


def _count_tfrecords(folder: str, split: str) -> int:
    shards = list_shards(folder, split)
    if not shards:
        raise ValueError(
            f"--data_dir={folder}: no {split} shards (expected `drscreen prepare` output)"
        )
    return sum(1 for _ in tf.data.TFRecordDataset(shards))


def load_splits(config: DataConfig, model_dir: str | Path, seed: int) -> DataSplits:
    """The run's train/validation/test splits, generating synthetic data when needed."""
    if config.data_source == "tfrecords":
        folder = config.data_dir
        return DataSplits(folder, folder, folder, _count_tfrecords(folder, "train"))
    records = read_dataset("synthetic", ensure_synthetic(config, model_dir))
    splits = split_by_patient(records, config.val_fraction, config.test_fraction, seed)
    for name, part in splits.items():
        if not part:
            raise ValueError(
                f"synthetic split {name!r} is empty: --synth_n={config.synth_n} is too small for "
                f"--val_fraction={config.val_fraction} --test_fraction={config.test_fraction}"
            )
    return DataSplits(splits["train"], splits["validation"], splits["test"], len(splits["train"]))


def steps_per_epoch(splits: DataSplits, config: DataConfig, requested: int) -> int:
    """`requested`, or one pass over the training split (at least one batch)."""
    if requested:
        return requested
    if splits.num_train < config.batch_size:
        raise ValueError(
            f"--batch_size={config.batch_size} exceeds the {splits.num_train} training images"
        )
    return splits.num_train // config.batch_size


def pipeline_config(
    config: DataConfig,
    image_size: int,
    seed: int,
    steps: int | None,
    training: bool,
    shard: tuple[int, int] = (1, 0),
) -> pipeline.PipelineConfig:
    """Pipeline settings for one stage; `shard` = (number of workers, this worker's index)."""
    workers, index = shard
    return pipeline.PipelineConfig(
        image_size=image_size,
        batch_size=config.batch_size,
        augment=AugmentConfig() if (training and config.augment) else None,
        cache=config.cache,
        seed=seed,
        resample=training and config.class_rebalancing,
        steps_per_epoch=steps,
        num_shards=workers,
        shard_index=index,
    )


def _without_autoshard(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def batches(
    source: Source, split: str, config: pipeline.PipelineConfig, training: bool
) -> tf.data.Dataset:
    """``(images, grades)`` batches of one split; training batches repeat forever."""
    if isinstance(source, str):
        dataset = pipeline.dataset_from_tfrecords(source, config, training, split=split)
    else:
        dataset = pipeline.dataset_from_records(source, config, training)
    if training and dataset.cardinality() != tf.data.INFINITE_CARDINALITY:
        dataset = dataset.repeat()
    return _without_autoshard(dataset)


def evaluation_batches(source: Source, split: str, image_size: int, batch_size: int):
    """Ordered batches of dicts (image, mask, grade, image_id, ...) of one split."""
    config = pipeline.PipelineConfig(image_size=image_size, batch_size=batch_size, augment=None)
    return pipeline.dataset_for_evaluation(source, config, split=split)


def check_matches_model(dataset: tf.data.Dataset, model: keras.Model, name: str) -> None:
    """Raise ValueError when `dataset`'s images do not fit `model`'s input, before training."""
    images_spec = dataset.element_spec[0]
    expected = tuple(model.input_shape[1:])
    got = tuple(images_spec.shape[1:])
    compatible = len(got) == len(expected) and all(
        g is None or e is None or g == e for g, e in zip(got, expected, strict=True)
    )
    if not compatible or images_spec.dtype != tf.float32:
        raise ValueError(
            f"{name} batches hold {images_spec.dtype.name} images of shape {got} but model "
            f"{model.name} expects float32 {expected}; check --image_size and the data"
        )
