"""Training, validation and test data of a run, built from its `DataConfig`.

The split is computed once and read after: the run directory's ``splits.json`` (image ids of
each split, `drscreen.data.splits.Splits`) is written at the run's start and read when it
resumes, and ``drscreen evaluate`` reads it to evaluate exactly the images training held out.
Two sources:

- ``synthetic``: the synthetic benchmark (`drscreen.data.synthetic`) in ``data_dir``, generated
  there first when it has no ``synth.json`` (written last, so a killed generation is redone);
  split by patient with the run's seed and ``--val_fraction``/``--test_fraction``. Lesion masks
  are available for evaluation.
- ``tfrecords``: the shards written by ``drscreen prepare``; the run's split is the one
  ``prepare`` made (its ``splits.json``, copied into the run directory).

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
import numpy as np
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.augment import DIHEDRAL, AugmentConfig
from drscreen.data.readers import read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.sources import PreparedSplit, Source, source_size, split_source
from drscreen.data.splits import SPLITS, Splits
from drscreen.data.synthetic import DIFFICULTIES, SynthConfig, write_dataset
from drscreen.data.synthetic.writer import CONFIG_FILE
from drscreen.models.runs import RunDirectory
from drscreen.training.config import DataConfig, flatten_settings

SPLIT_MADE_BY = "drscreen.training"


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """The run's split and the source of each part (records, or a prepared folder's shards)."""

    train: Source
    validation: Source
    test: Source
    splits: Splits

    @property
    def num_train(self) -> int:
        """Training images."""
        return source_size(self.train)


def synthetic_dir(config: DataConfig, model_dir: str | Path) -> Path:
    """Folder of the synthetic benchmark: ``data_dir``, or ``RUN_DIR/data`` when empty."""
    return Path(config.data_dir) if config.data_dir else RunDirectory(model_dir).synthetic_data_dir


def _synth_workers(n: int) -> int:
    """Worker processes for generating `n` images: each costs a Python start-up, so few."""
    return max(1, min(os.cpu_count() or 1, n // 100))


def synth_config(config: DataConfig) -> SynthConfig:
    """The synthetic benchmark the --synth_* flags ask for."""
    return SynthConfig.from_preset(
        config.synth_difficulty,
        n=config.synth_n,
        size=config.synth_size,
        seed=config.synth_seed,
        lesion_size=DIFFICULTIES[config.synth_difficulty].lesion_size * config.synth_lesion_size,
    )


_FLAG_SETTINGS = ("n", "size", "seed", "difficulty", "params.lesion_size")
"""What the --synth_* flags decide of a synthetic benchmark (keys of its synth.json)."""


def _reuse_notice(out: Path, config: DataConfig) -> str | None:
    """A warning when the benchmark already in `out` differs from the --synth_* flags."""
    existing = flatten_settings(json.loads((out / CONFIG_FILE).read_text())["config"])
    requested = flatten_settings(synth_config(config).to_dict())
    differences = [
        f"{key} {existing[key]} (flag: {requested[key]})"
        for key in _FLAG_SETTINGS
        if key in existing and existing[key] != requested[key]
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
    synth = synth_config(config)
    print(f"generating {synth.n} synthetic images of {synth.size} px in {out}", file=sys.stderr)
    write_dataset(synth, out, workers=_synth_workers(synth.n))
    return out


def _run_split(config: DataConfig, folder: Path, seed: int) -> Splits:
    """The split of a new run: prepare's (TFRecords) or computed from the synthetic records."""
    if config.data_source == "tfrecords":
        try:
            return Splits.load(folder)
        except FileNotFoundError:
            raise ValueError(
                f"--data_dir={folder}: no splits.json (expected `drscreen prepare` output, "
                "which writes one)"
            ) from None
    records = read_dataset("synthetic", folder)
    return Splits.by_patient(
        records, config.val_fraction, config.test_fraction, seed, SPLIT_MADE_BY, folder
    )


def load_splits(config: DataConfig, run: RunDirectory, seed: int) -> DataSplits:
    """The run's train/validation/test sources, generating synthetic data when needed.

    A new run computes its split (`drscreen.training.run` writes it to ``splits.json`` once
    every setting is checked); a resumed run reads it back (and refuses ``prepare`` data
    whose split changed since).
    """
    if config.data_source == "tfrecords":
        folder, dataset = Path(config.data_dir), ""
    else:
        folder, dataset = ensure_synthetic(config, run.path), "synthetic"
    if run.splits_file.is_file():
        splits = Splits.load(run.splits_file)
        if config.data_source == "tfrecords" and Splits.load(folder) != splits:
            raise ValueError(
                f"--data_dir={folder}: its split differs from the one this run started with "
                f"({run.splits_file}); choose a new --model_dir"
            )
    else:
        splits = _run_split(config, folder, seed)
        for name in SPLITS:
            if not splits.ids(name):
                raise ValueError(
                    f"split {name!r} of {folder} is empty: too few patients for "
                    f"--val_fraction={config.val_fraction} --test_fraction={config.test_fraction}"
                    " (synthetic data: raise --synth_n)"
                )
    parts = {name: split_source(str(folder), dataset, splits, name) for name in SPLITS}
    if config.shuffled_grades:
        parts["train"] = shuffled_grades(parts["train"], seed)
    return DataSplits(parts["train"], parts["validation"], parts["test"], splits)


def shuffled_grades(records: Sequence[FundusRecord], seed: int) -> list[FundusRecord]:
    """`records` with their grades permuted among them (seeded): the shuffled-label control."""
    grades = [record.grade for record in records]
    order = np.random.default_rng(seed).permutation(len(grades))
    return [
        dataclasses.replace(record, grade=grades[index])
        for record, index in zip(records, order, strict=True)
    ]


def steps_per_epoch(splits: DataSplits, config: DataConfig, requested: int) -> int:
    """`requested`, or one pass over the training split (at least one batch)."""
    if requested:
        return requested
    if splits.num_train < config.batch_size:
        raise ValueError(
            f"--batch_size={config.batch_size} exceeds the {splits.num_train} training images"
        )
    return splits.num_train // config.batch_size


_AUGMENTATIONS = {"oO": AugmentConfig(), "dihedral": DIHEDRAL, "none": None}


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
        augment=_AUGMENTATIONS[config.augmentation] if training else None,
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
    source: Source, config: pipeline.PipelineConfig, training: bool, replayed: int = 0
) -> tf.data.Dataset:
    """``(images, grades)`` batches of one split; training batches repeat forever.

    ``replayed`` batches are drawn and dropped first: a resumed stage continues the seeded
    stream where its checkpoint left it, so it trains on the batches an uninterrupted run
    would (every random choice of the pipeline is in the stream, none is restored otherwise).
    """
    if isinstance(source, PreparedSplit):
        if source.image_ids is not None:
            raise ValueError(f"{source.folder}: training reads whole prepare splits, not ids")
        dataset = pipeline.dataset_from_tfrecords(
            source.folder, config, training, split=source.split
        )
    else:
        dataset = pipeline.dataset_from_records(source, config, training)
    if training and dataset.cardinality() != tf.data.INFINITE_CARDINALITY:
        dataset = dataset.repeat()
    if replayed:
        dataset = dataset.skip(replayed)
    return _without_autoshard(dataset)


def evaluation_batches(source: Source, image_size: int, batch_size: int) -> tf.data.Dataset:
    """Ordered batches of dicts (image, mask, grade, image_id, ...) of one split."""
    config = pipeline.PipelineConfig(image_size=image_size, batch_size=batch_size, augment=None)
    return pipeline.dataset_for_evaluation(source, config)


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
