"""Turning a dataset into pre-processed, sharded TFRecords with a manifest (`drscreen prepare`).

Reads a dataset's records, splits them by patient, pre-processes every photograph once with
`drscreen.data.fundus` (the same code as training and serving), and writes
``<out>/<split>-00000-of-000NN.tfrecord`` shards in parallel plus ``<out>/manifest.json`` and
``<out>/splits.json`` (the split as image ids, with its seed and fractions: training on this
folder and evaluating it read that file). Bad inputs (images `drscreen.data.image_io` refuses,
crops without a field of view, label problems reported by the reader) are listed in the
manifest with path and reason and skipped, or stop the run with ``strict=True``. The output is
built in a staging folder and swapped in whole (`drscreen.data.staging`): a run that fails,
is killed or fills the disk leaves the previous output as it was.
"""

import concurrent.futures
import dataclasses
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from drscreen.data import fundus, tfrecords
from drscreen.data.image_io import DEFAULT_MAX_PIXELS, ImageError, load_mask_image, load_rgb
from drscreen.data.readers import binarize_mask, read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.splits import SPLITS, SPLITS_FILE, Splits, split_by_patient, split_fractions
from drscreen.data.staging import staged_folder

MANIFEST_NAME = "manifest.json"


class PrepareError(ValueError):
    """A bad input met with ``strict=True``; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """What `prepare_dataset` reads, how it processes it and where it writes.

    Attributes
    ----------
    dataset:
        Reader name, one of `drscreen.data.readers.DATASET_NAMES`.
    data_dir:
        The dataset's local copy.
    out_dir:
        Output folder for the shards and the manifest (created when missing).
    image_size:
        Side of the pre-processed square images, in pixels.
    shard_size:
        Images per shard (the last shard of a split holds the rest).
    strict:
        Stop at the first bad input instead of skipping it.
    val_fraction, test_fraction:
        Share of patients in validation and test.
    seed:
        Seed of the split and of the order within shards.
    num_workers:
        Shards processed at once; 0 for one per CPU core.
    max_image_pixels:
        Photographs and masks with more pixels (by their header) are skipped undecoded.
    """

    dataset: str
    data_dir: str
    out_dir: str
    image_size: int = 512
    shard_size: int = 256
    strict: bool = False
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    num_workers: int = 0
    max_image_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.image_size < 16:
            raise ValueError(f"image_size {self.image_size} must be >= 16")
        if self.shard_size < 1:
            raise ValueError(f"shard_size {self.shard_size} must be >= 1")
        if self.num_workers < 0:
            raise ValueError(f"num_workers {self.num_workers} must be >= 0")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels {self.max_image_pixels} must be >= 1")
        split_fractions(self.val_fraction, self.test_fraction)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What `prepare_dataset` wrote; saved as ``manifest.json`` next to the shards.

    Attributes
    ----------
    dataset:
        Reader name.
    image_size:
        Side of the stored images.
    splits:
        Split name to ``{"count": n, "grades": {"0": n, ..., "-1": n}, "datasets":
        {name: n}, "lesion_masks": {type: n}, "shards": [file names]}``; grade -1 counts
        images without a grade, ``lesion_masks`` the images with a mask of each type.
    skipped:
        ``{"path": ..., "reason": ...}`` for each input left out.
    config:
        The `PrepareConfig` as a dict.
    """

    dataset: str
    image_size: int
    splits: dict[str, dict]
    skipped: list[dict[str, str]]
    config: dict

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> "Manifest":
        """Reads a ``manifest.json`` (or the one inside the folder `path`)."""
        if tf.io.gfile.isdir(path):
            path = os.path.join(path, MANIFEST_NAME)
        with tf.io.gfile.GFile(path) as f:
            return cls(**json.load(f))


class _Progress:
    """A thread-safe progress line on stderr."""

    def __init__(self, total: int):
        self._total, self._done, self._skipped = total, 0, 0
        self._every = max(1, total // 200)
        self._lock = threading.Lock()

    @property
    def done(self) -> int:
        """Images processed so far."""
        return self._done

    def close(self) -> None:
        """End the progress line when a run stops before its last image."""
        with self._lock:
            if 0 < self._done < self._total:
                print(file=sys.stderr, flush=True)

    def update(self, skipped: bool) -> None:
        with self._lock:
            self._done += 1
            self._skipped += int(skipped)
            if self._done % self._every == 0 or self._done == self._total:
                end = "\n" if self._done == self._total else ""
                print(
                    f"\rprepare: {self._done}/{self._total} images, {self._skipped} skipped",
                    end=end,
                    file=sys.stderr,
                    flush=True,
                )


def _preprocessors(size: int) -> tuple[Callable, Callable]:
    """Graph-compiled crops of an image and of its lesion masks (traced once per size)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def crop_image(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        cropped, mask = fundus.crop_to_field_of_view(image, size)
        return tf.cast(tf.round(cropped), tf.uint8), mask > 0.5

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([None, None, None], tf.uint8),
        ]
    )
    def crop_lesions(image: tf.Tensor, lesions: tf.Tensor) -> tf.Tensor:
        box = fundus.field_of_view_box(fundus.field_of_view_mask(image))
        return fundus.crop_square(lesions, box, size) > 0.5

    return crop_image, crop_lesions


def _example(
    record: FundusRecord, crop_image: Callable, crop_lesions: Callable, max_pixels: int
) -> bytes:
    """Loads, pre-processes and serializes one record; raises ImageError for bad inputs."""
    image = load_rgb(record.image_path, max_pixels=max_pixels)
    cropped, fov_mask = crop_image(image)
    if not fundus.has_field_of_view(fov_mask):
        raise ImageError(record.image_path, fundus.NO_FIELD_OF_VIEW_REASON)
    lesion_masks = {}
    if record.lesion_masks:
        types = sorted(record.lesion_masks)
        masks = []
        for lesion in types:
            path = record.lesion_masks[lesion]
            mask = binarize_mask(load_mask_image(path, max_pixels), record.dataset)
            if mask.shape != image.shape[:2]:
                raise ImageError(
                    path, f"mask is {mask.shape}, its image {record.image_path} {image.shape[:2]}"
                )
            masks.append(mask.astype(np.uint8))
        cropped_masks = crop_lesions(image, np.stack(masks, axis=-1)).numpy()
        lesion_masks = {lesion: cropped_masks[..., i] for i, lesion in enumerate(types)}
    return tfrecords.make_example(record, cropped.numpy(), fov_mask.numpy(), lesion_masks)


def _plan(
    splits: dict[str, list[FundusRecord]], config: PrepareConfig
) -> list[tuple[str, str, list[FundusRecord]]]:
    """(split, shard file name, records) for every shard, records shuffled within splits."""
    rng = np.random.default_rng(config.seed)
    plan = []
    for split in SPLITS:
        records = [splits[split][i] for i in rng.permutation(len(splits[split]))]
        count = math.ceil(len(records) / config.shard_size)
        for index in range(count):
            chunk = records[index * config.shard_size : (index + 1) * config.shard_size]
            plan.append((split, tfrecords.shard_filename(split, index, count), chunk))
    return plan


def _split_summary(written: Sequence[FundusRecord], shards: list[str]) -> dict:
    grades: dict[str, int] = {}
    datasets: dict[str, int] = {}
    lesion_masks: dict[str, int] = {}
    for record in written:
        grade = str(tfrecords.MISSING_GRADE if record.grade is None else record.grade)
        grades[grade] = grades.get(grade, 0) + 1
        datasets[record.dataset] = datasets.get(record.dataset, 0) + 1
        for lesion in record.lesion_masks:
            lesion_masks[lesion] = lesion_masks.get(lesion, 0) + 1
    return {
        "count": len(written),
        "grades": grades,
        "datasets": datasets,
        "lesion_masks": lesion_masks,
        "shards": shards,
    }


class _Stopped(Exception):
    """Raised in a shard writer when another shard failed: stop at once."""


def _write_shards(
    plan: list[tuple[str, str, list[FundusRecord]]],
    config: PrepareConfig,
    folder: str,
    progress: _Progress,
) -> list[tuple[list[FundusRecord], list[dict]]]:
    """Write every planned shard into ``folder``: per shard, the records written and the
    inputs skipped. The first shard that fails (a bad input with ``strict``, a full disk)
    stops the others at their next image, and its error is raised."""
    crop_image, crop_lesions = _preprocessors(config.image_size)
    stop = threading.Event()

    def write(chunk: list[FundusRecord], name: str) -> tuple[list[FundusRecord], list[dict]]:
        written, bad = [], []

        def examples():
            for record in chunk:
                if stop.is_set():
                    raise _Stopped
                try:
                    example = _example(record, crop_image, crop_lesions, config.max_image_pixels)
                except ImageError as error:
                    if config.strict:
                        raise PrepareError(str(error)) from error
                    bad.append({"path": error.path, "reason": error.reason})
                    progress.update(skipped=True)
                    continue
                written.append(record)
                progress.update(skipped=False)
                yield example

        if stop.is_set():
            raise _Stopped
        try:
            tfrecords.write_shard(os.path.join(folder, name), examples())
        except BaseException:
            stop.set()
            raise
        return written, bad

    workers = config.num_workers or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(write, chunk, name) for _, name, chunk in plan]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    failed = [f.exception() for f in futures if not f.cancelled() and f.exception()]
    first = next((error for error in failed if not isinstance(error, _Stopped)), None)
    if first is not None:
        raise first
    return [future.result() for future in futures]


def prepare_records(
    records: Sequence[FundusRecord],
    config: PrepareConfig,
    skipped: Sequence[dict[str, str]] = (),
) -> Manifest:
    """Splits, pre-processes and writes `records`; see `prepare_dataset`.

    Everything is written into a staging folder beside ``config.out_dir`` and swapped in when
    complete (`drscreen.data.staging`): the output folder holds the previous complete output
    or this one, never a mix, whatever stops the run.

    Parameters
    ----------
    records:
        Every photograph the reader found (the split's fingerprint is theirs).
    config:
        Output folder, sizes, split fractions, strictness.
    skipped:
        Inputs already left out upstream (``{"path", "reason"}``), copied into the manifest.

    Returns
    -------
    Manifest
        Also written to ``<out_dir>/manifest.json``; the split of the images written goes to
        ``<out_dir>/splits.json``.

    Raises
    ------
    PrepareError
        When there is no photograph to write, when none could be used, or with
        ``strict=True`` at the first unusable image; nothing is kept.
    ValueError
        When ``config.out_dir`` holds files that are not a `prepare` output.
    drscreen.data.staging.OutOfSpaceError
        When the disk fills up (saying about how much space the output needs).
    """
    if not records:
        raise PrepareError(
            f"{config.data_dir}: the {config.dataset} reader found no image to write"
            + (f" ({len(skipped)} listed image(s) skipped)" if skipped else "")
        )
    splits = split_by_patient(records, config.val_fraction, config.test_fraction, config.seed)
    plan = _plan(splits, config)
    progress = _Progress(len(records))

    def space_needed(written_bytes: int) -> int | None:
        return written_bytes * len(records) // progress.done if progress.done else None

    with staged_folder(config.out_dir, MANIFEST_NAME, space_needed) as staging:
        try:
            results = _write_shards(plan, config, staging, progress)
        finally:
            progress.close()
        summaries: dict[str, dict] = {}
        all_skipped = list(skipped)
        written_ids: set[str] = set()
        for split in SPLITS:
            written, shards = [], []
            for (shard_split, name, _), (good, bad) in zip(plan, results, strict=True):
                if shard_split == split:
                    written += good
                    shards.append(name)
                    all_skipped += bad
            summaries[split] = _split_summary(written, shards)
            written_ids.update(record.image_id for record in written)
        if not written_ids:
            raise PrepareError(
                f"{config.data_dir}: none of the {len(records)} photographs could be used, "
                f"e.g. {all_skipped[0]['path']}: {all_skipped[0]['reason']}"
            )
        kept = {name: [r for r in splits[name] if r.image_id in written_ids] for name in SPLITS}
        Splits.from_parts(
            kept,
            "drscreen prepare",
            config.seed,
            config.val_fraction,
            config.test_fraction,
            records,
            config.data_dir,
        ).write(os.path.join(staging, SPLITS_FILE))
        manifest = Manifest(
            dataset=config.dataset,
            image_size=config.image_size,
            splits=summaries,
            skipped=all_skipped,
            config=dataclasses.asdict(config),
        )
        with open(os.path.join(staging, MANIFEST_NAME), "w", encoding="utf-8") as f:
            f.write(manifest.to_json())
    return manifest


def prepare_dataset(config: PrepareConfig) -> Manifest:
    """Reads dataset `config.dataset` and writes its TFRecords and manifest.

    Label-file problems the reader reports (missing image, missing or invalid grade, ...)
    are listed as skipped, or raise `drscreen.data.readers.DatasetProblemsError` with
    ``strict=True``.

    Returns
    -------
    Manifest
        Also written to ``<out_dir>/manifest.json``.
    """
    problems = None if config.strict else []
    records = read_dataset(config.dataset, config.data_dir, problems)
    skipped = [{"path": str(p.source), "reason": p.reason} for p in problems or []]
    return prepare_records(records, config, skipped)
