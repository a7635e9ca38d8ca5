"""tf.data input pipelines: from records or TFRecord shards to batches of images and grades.

Owns decoding in parallel, caching, shuffling, o_O class resampling, augmentation, batching,
prefetching and sharding for distributed training. Training and evaluation batches are
``(images float32 (B, S, S, 3) in [0, 255], grades float32 (B,))``; `dataset_for_evaluation`
yields dicts that keep identifiers and the field-of-view mask, and the lesion masks cropped
like their images when asked. Sources are records or `drscreen.data.sources.PreparedSplit`
(see `drscreen.data.sources`). Pipelines seeded with `PipelineConfig.seed` produce the same
batches every time they are built.

Image files are decoded by `drscreen.data.image_io.load_rgb`, with the checks every command
applies; a photograph it refuses, or whose crop has no field of view, is left out of the
``(images, grades)`` batches and named once on stderr, while `dataset_for_evaluation` keeps
it (black) with its reason in ``problem`` for the caller to report.

Images travel as uint8 until batching (a quarter of the memory in caches and shuffle
buffers). Must not know about models or training loops.
"""

import dataclasses
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from drscreen.data import tfrecords
from drscreen.data.augment import AugmentConfig, augment_image
from drscreen.data.fundus import (
    NO_FIELD_OF_VIEW_REASON,
    crop_square,
    crop_to_field_of_view,
    field_of_view_box,
    field_of_view_mask,
    has_field_of_view,
)
from drscreen.data.image_io import MIN_IMAGE_SIDE, ImageError, load_mask_image, load_rgb
from drscreen.data.lesions import LESION_TYPES, NUM_GRADES
from drscreen.data.readers import binarize_mask
from drscreen.data.records import FundusRecord
from drscreen.data.sources import PreparedSplit, Source

# o_O's per-image sampling weights: the inverse grade frequencies of Kaggle DR 2015 at first,
# decaying towards a mild over-sampling of disease.
OO_INITIAL_WEIGHTS = (1.36, 14.38, 6.64, 40.24, 49.61)
OO_FINAL_WEIGHTS = (1.0, 2.0, 2.0, 2.0, 2.0)
OO_WEIGHT_DECAY = 0.975
_SCHEDULE_EPOCHS = 2000  # r^2000 < 1e-21: the weights have reached their final value

Element = dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How batches are built.

    Attributes
    ----------
    image_size:
        Side of the square images, in pixels.
    batch_size:
        Global batch size (divided among replicas when an input context is given).
    augment:
        o_O augmentation for training; None for none.
    shuffle_buffer:
        Size of the shuffle buffer of decoded images in training (paths are also shuffled
        fully before decoding).
    cache:
        Cache decoded images: False, True (in memory) or a file path prefix.
    seed:
        Seed of every random choice; None for a non-deterministic, slightly faster pipeline.
    resample:
        o_O class resampling in training: an infinite dataset whose grade mix follows
        `class_weights_at_epoch`. Needs `steps_per_epoch`.
    resample_initial, resample_final, resample_decay:
        w0, wf and r of the schedule (per-image weights for grades 0-4).
    steps_per_epoch:
        Batches per epoch, to know the epoch of each sampled image.
    num_shards, shard_index:
        Read only this shard of the data (multi-worker training without an input context).
    """

    image_size: int = 512
    batch_size: int = 32
    augment: AugmentConfig | None = AugmentConfig()
    shuffle_buffer: int = 256
    cache: bool | str = False
    seed: int | None = 0
    resample: bool = False
    resample_initial: tuple[float, ...] = OO_INITIAL_WEIGHTS
    resample_final: tuple[float, ...] = OO_FINAL_WEIGHTS
    resample_decay: float = OO_WEIGHT_DECAY
    steps_per_epoch: int | None = None
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self):
        if self.image_size < 1 or self.batch_size < 1:
            raise ValueError(
                f"image_size {self.image_size} and batch_size {self.batch_size} must be >= 1"
            )
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer {self.shuffle_buffer} must be >= 0")
        if self.resample and (self.steps_per_epoch is None or self.steps_per_epoch < 1):
            raise ValueError("resample=True needs steps_per_epoch >= 1")
        for name in ("resample_initial", "resample_final"):
            weights = getattr(self, name)
            if len(weights) != NUM_GRADES or min(weights) < 0:
                raise ValueError(f"{name} {weights} must be {NUM_GRADES} weights >= 0")
        if not 0.0 <= self.resample_decay <= 1.0:
            raise ValueError(f"resample_decay {self.resample_decay} must be in [0, 1]")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(
                f"shard_index {self.shard_index} must be in [0, num_shards={self.num_shards})"
            )


def class_weights_at_epoch(
    epoch: int,
    initial: Sequence[float] = OO_INITIAL_WEIGHTS,
    final: Sequence[float] = OO_FINAL_WEIGHTS,
    decay: float = OO_WEIGHT_DECAY,
) -> np.ndarray:
    """o_O's per-image sampling weight of each grade: w_t = r^(t−1)·w0 + (1 − r^(t−1))·wf.

    Parameters
    ----------
    epoch:
        t, 1-based.
    initial, final, decay:
        w0, wf and r.

    Returns
    -------
    np.ndarray
        float64 (len(initial),). A grade with n images is drawn with probability ∝ w·n.
    """
    if epoch < 1:
        raise ValueError(f"epoch {epoch} must be >= 1 (1-based)")
    factor = decay ** (epoch - 1)
    return factor * np.asarray(initial, np.float64) + (1.0 - factor) * np.asarray(final, np.float64)


def _grade_probabilities(config: PipelineConfig, counts: Mapping[int, int]) -> np.ndarray:
    """(epochs, NUM_GRADES) table of the probability of drawing each grade, epoch 1 in row 0.

    A grade is drawn with probability ∝ w_t·n; grades absent from `counts` (or with n = 0)
    get probability 0 and the others are renormalised.

    Raises
    ------
    ValueError
        If the weights of every grade present are 0 in some epoch.
    """
    weights = np.stack(
        [
            class_weights_at_epoch(
                t, config.resample_initial, config.resample_final, config.resample_decay
            )
            for t in range(1, _SCHEDULE_EPOCHS + 1)
        ]
    )
    images = np.zeros(NUM_GRADES, np.float64)
    for grade, n in counts.items():
        images[grade] = n
    mass = weights * images
    total = mass.sum(axis=1, keepdims=True)
    if not np.all(total > 0):
        present = [g for g in range(NUM_GRADES) if images[g]]
        raise ValueError(
            f"resampling weights give every grade present in training {present} weight 0 "
            f"(resample_initial={config.resample_initial}, "
            f"resample_final={config.resample_final})"
        )
    return (mass / total).astype(np.float32)


def _shard(
    dataset: tf.data.Dataset,
    config: PipelineConfig,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    if input_context is not None and input_context.num_input_pipelines > 1:
        return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if config.num_shards > 1:
        return dataset.shard(config.num_shards, config.shard_index)
    return dataset


def _batch_size(config: PipelineConfig, input_context: tf.distribute.InputContext | None) -> int:
    if input_context is None:
        return config.batch_size
    return input_context.get_per_replica_batch_size(config.batch_size)


def _seed(config: PipelineConfig, offset: int) -> int | None:
    return None if config.seed is None else config.seed + offset


def _cache(dataset: tf.data.Dataset, config: PipelineConfig, suffix: str) -> tf.data.Dataset:
    if config.cache is False:
        return dataset
    if config.cache is True:
        return dataset.cache()
    return dataset.cache(f"{config.cache}{suffix}")


def _deterministic(config: PipelineConfig) -> bool | None:
    """Keep element order when seeded; else let tf.data's default (options) decide."""
    return True if config.seed is not None else None


def _map(dataset: tf.data.Dataset, fn: Callable, config: PipelineConfig) -> tf.data.Dataset:
    return dataset.map(
        fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=_deterministic(config)
    )


def _training_batches(
    grade_streams: dict[int, tf.data.Dataset],
    grade_counts: dict[int, int],
    config: PipelineConfig,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """Shuffles (or resamples), augments and batches decoded training elements."""
    batch_size = _batch_size(config, input_context)
    if config.resample:
        grades = sorted(grade_streams)
        buffer = max(1, config.shuffle_buffer // len(grades))
        streams = [
            grade_streams[g].repeat().shuffle(buffer, seed=_seed(config, 10 + g)) for g in grades
        ]
        table = _grade_probabilities(config, grade_counts)[:, grades]
        images_per_epoch = config.steps_per_epoch * batch_size
        weights = tf.data.Dataset.counter().map(
            lambda i: tf.gather(table, tf.minimum(i // images_per_epoch, len(table) - 1))
        )
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=weights, seed=_seed(config, 2), stop_on_empty_dataset=False
        )
    else:
        dataset = grade_streams[-1]
        if config.shuffle_buffer > 1:
            dataset = dataset.shuffle(config.shuffle_buffer, seed=_seed(config, 3))
    if config.augment is not None:
        augment = config.augment
        randoms = tf.data.Dataset.random(seed=_seed(config, 4), rerandomize_each_iteration=True)

        def augment_element(element: Element, random: tf.Tensor) -> Element:
            seed = tf.stack([random, tf.constant(0, tf.int64)])
            image = augment_image(tf.cast(element["image"], tf.float32), seed, augment)
            return {**element, "image": image}

        dataset = _map(tf.data.Dataset.zip(dataset, randoms), augment_element, config)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.map(_to_pair).prefetch(tf.data.AUTOTUNE)


def _to_pair(batch: Element) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(batch["image"], tf.float32), batch["grade"]


_EVALUATION_KEYS = ("grade", "image_id", "patient_id", "eye", "path", "lesion_masks", "annotated")


def _to_evaluation(batch: Element) -> Element:
    return {
        "image": tf.cast(batch["image"], tf.float32),
        "mask": tf.cast(batch["mask"], tf.float32),
        # a prepared example passed `drscreen prepare`'s checks
        "problem": batch.get("problem", tf.fill(tf.shape(batch["grade"]), "")),
        **{key: batch[key] for key in _EVALUATION_KEYS if key in batch},
    }


# ---- Records (encoded image files) ---------------------------------------------------------


def _record_slices(records: Sequence[FundusRecord]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(
        {
            "path": [r.image_path for r in records],
            "grade": np.array(
                [tfrecords.MISSING_GRADE if r.grade is None else r.grade for r in records],
                np.float32,
            ),
            "image_id": [r.image_id for r in records],
            "patient_id": [r.patient_id for r in records],
            "eye": [r.eye for r in records],
        }
    )


def _record_loader(size: int) -> Callable[[Element], Element]:
    def load(element: Element) -> Element:
        image, problem = tf.numpy_function(
            _read_photograph, [element["path"]], (tf.uint8, tf.string), stateful=False
        )
        image, mask = crop_to_field_of_view(tf.ensure_shape(image, [None, None, 3]), size)
        return _checked(element, image, mask, tf.ensure_shape(problem, []))

    return load


_REFUSED_IMAGE = np.zeros((MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 3), np.uint8)
"""Stands in for a refused photograph: black, so its crop has no field of view."""


def _read_photograph(path: bytes) -> tuple[np.ndarray, bytes]:
    """numpy loader: the photograph as `load_rgb` reads it and "", or black and the reason."""
    try:
        return load_rgb(os.fsdecode(path)), b""
    except ImageError as error:
        return _REFUSED_IMAGE, error.reason.encode()


def _checked(element: Element, image: tf.Tensor, mask: tf.Tensor, problem: tf.Tensor) -> Element:
    """The loaded element, ``problem`` naming why it is refused ("" when usable): a crop
    without a field of view is refused too; a refused photograph's image and masks are black."""
    problem = tf.where(
        tf.equal(problem, "") & tf.logical_not(has_field_of_view(mask)),
        NO_FIELD_OF_VIEW_REASON,
        problem,
    )
    usable = tf.cast(tf.equal(problem, ""), tf.float32)
    return {
        **{k: v for k, v in element.items() if k != "index"},
        "image": tf.cast(tf.round(image * usable), tf.uint8),
        "mask": tf.cast(mask * usable, tf.uint8),
        "problem": problem,
    }


def _refusals_left_out(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without its refused photographs, each named once on stderr with its
    reason however many times the dataset is iterated."""
    reported: set[bytes] = set()
    lock = threading.Lock()

    def report(path: bytes, problem: bytes) -> np.bool_:
        with lock:
            if path not in reported:
                reported.add(path)
                print(f"skipped {os.fsdecode(path)}: {problem.decode()}", file=sys.stderr)
        return np.bool_(False)

    def usable(element: Element) -> tf.Tensor:
        return tf.cond(
            tf.equal(element["problem"], ""),
            lambda: tf.constant(True),
            lambda: tf.ensure_shape(
                tf.numpy_function(
                    report, [element["path"], element["problem"]], tf.bool, stateful=True
                ),
                [],
            ),
        )

    return dataset.filter(usable)


def _decoded_records(
    records: Sequence[FundusRecord],
    config: PipelineConfig,
    training: bool,
    input_context: tf.distribute.InputContext | None,
    cache_suffix: str,
) -> tf.data.Dataset:
    dataset = _shard(_record_slices(records), config, input_context)
    if training and len(records) > 1:
        dataset = dataset.shuffle(len(records), seed=_seed(config, 1))
    dataset = _map(dataset, _record_loader(config.image_size), config)
    return _cache(dataset, config, cache_suffix)


def _check_records(records: Sequence[FundusRecord], training: bool) -> None:
    if not records:
        raise ValueError("no records to build a dataset from")
    if training:
        unlabelled = [r.image_path for r in records if r.grade is None]
        if unlabelled:
            raise ValueError(
                f"{len(unlabelled)} training records have no grade, e.g. {unlabelled[0]}"
            )


def _load_with_masks(
    records: Sequence[FundusRecord],
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, bytes]]:
    """numpy loader of record ``index``: its photograph (as `_read_photograph`), its binary
    lesion masks stacked (H, W, T) in `LESION_TYPES` order, and why it is refused ("" when
    usable): the photograph's reason, or a mask that is unreadable or of another size."""
    types = len(LESION_TYPES)

    def load(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, bytes]:
        record = records[int(index)]
        image, problem = _read_photograph(record.image_path.encode())
        height, width = image.shape[:2]
        stacked = np.zeros((height, width, types), np.uint8)
        for channel, lesion in enumerate(LESION_TYPES):
            path = record.lesion_masks.get(lesion)
            if path is None or problem:
                continue
            try:
                mask = binarize_mask(load_mask_image(str(path)), record.dataset)
            except ImageError as error:
                problem = f"{lesion} mask {error}".encode()
                continue
            if mask.shape != (height, width):
                problem = (
                    f"{lesion} mask {path} is {mask.shape[0]}x{mask.shape[1]}, "
                    f"the photograph {height}x{width}"
                ).encode()
                continue
            stacked[..., channel] = mask
        return image, stacked, problem

    return load


def _record_loader_with_masks(
    records: Sequence[FundusRecord], size: int
) -> Callable[[Element], Element]:
    """Decode one photograph once, with its lesion masks, cropped together.

    Image, FOV and lesion masks are cropped as one uint8 stack by the box of the photograph's
    own field of view, as `crop_to_field_of_view` crops image and FOV, so each lesion mask goes
    through the crop of its own photograph.
    """
    load = _load_with_masks(records)
    types = len(LESION_TYPES)

    def decode(element: Element) -> Element:
        image, masks, problem = tf.numpy_function(
            load, [element["index"]], (tf.uint8, tf.uint8, tf.string), stateful=False
        )
        image = tf.ensure_shape(image, [None, None, 3])
        masks = tf.ensure_shape(masks, [None, None, types])
        fov = field_of_view_mask(image)
        stacked = tf.concat(
            [image, tf.cast(fov[..., tf.newaxis] * 255.0, tf.uint8), masks * 255], axis=-1
        )
        cropped = crop_square(stacked, field_of_view_box(fov), size)
        cropped = tf.ensure_shape(cropped, [size, size, 4 + types])
        image = tf.clip_by_value(cropped[..., :3], 0.0, 255.0)
        mask = tf.cast(cropped[..., 3] > 127.5, tf.float32)
        checked = _checked(element, image, mask, tf.ensure_shape(problem, []))
        usable = tf.cast(tf.equal(checked["problem"], ""), tf.uint8)
        return {**checked, "lesion_masks": tf.cast(cropped[..., 4:] > 127.5, tf.uint8) * usable}

    return decode


def _decoded_records_with_masks(
    records: Sequence[FundusRecord],
    config: PipelineConfig,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    annotated = np.array(
        [[lesion in r.lesion_masks for lesion in LESION_TYPES] for r in records], bool
    )
    slices = tf.data.Dataset.zip(
        _record_slices(records),
        tf.data.Dataset.from_tensor_slices(
            {"index": np.arange(len(records)), "annotated": annotated}
        ),
    ).map(lambda element, extra: {**element, **extra})
    dataset = _shard(slices, config, input_context)
    return _map(dataset, _record_loader_with_masks(records, config.image_size), config)


def dataset_from_records(
    records: Sequence[FundusRecord],
    config: PipelineConfig,
    training: bool,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches decoded and pre-processed from image files.

    Parameters
    ----------
    records:
        Photographs; in training every record needs a grade.
    config:
        Pipeline settings.
    training:
        Shuffle, resample, augment and drop the last partial batch; otherwise one ordered
        pass with all images.
    input_context:
        From `tf.distribute.Strategy.distribute_datasets_from_function`: shards the records
        and gives the per-replica batch size.

    Returns
    -------
    tf.data.Dataset
        ``(images float32 (B, S, S, 3) in [0, 255], grades float32 (B,))``; grades of
        unlabelled records are -1.
    """
    _check_records(records, training)
    if not training:
        dataset = _refusals_left_out(_decoded_records(records, config, False, input_context, ""))
        dataset = dataset.batch(_batch_size(config, input_context))
        return dataset.map(_to_pair).prefetch(tf.data.AUTOTUNE)
    if config.resample:
        by_grade = {g: [r for r in records if r.grade == g] for g in range(NUM_GRADES)}
        by_grade = {g: rs for g, rs in by_grade.items() if rs}
        streams = {
            g: _refusals_left_out(_decoded_records(rs, config, True, input_context, f"-grade{g}"))
            for g, rs in by_grade.items()
        }
        counts = {g: len(rs) for g, rs in by_grade.items()}
    else:
        streams = {
            -1: _refusals_left_out(_decoded_records(records, config, True, input_context, ""))
        }
        counts = {-1: len(records)}
    return _training_batches(streams, counts, config, input_context)


# ---- TFRecords (output of `drscreen prepare`) ---------------------------------------------


def _resized(image: tf.Tensor, size: int, method: str) -> tf.Tensor:
    """``image`` (H, H, C) uint8 at ``size`` px: as stored when it has that size."""
    return tf.cond(
        tf.equal(tf.shape(image)[0], size),
        lambda: image,
        lambda: tf.cast(
            tf.round(tf.image.resize(image, [size, size], method, antialias=method != "nearest")),
            tf.uint8,
        ),
    )


def _tfrecord_loader(size: int, lesion_masks: bool = False) -> Callable[[Element], Element]:
    def load(features: Element) -> Element:
        decoded = tfrecords.decode_features(features, lesion_masks)
        image = tf.ensure_shape(_resized(decoded.pop("image"), size, "bilinear"), [size, size, 3])
        fov = _resized(decoded.pop("fov_mask")[..., tf.newaxis], size, "nearest")
        element = {
            **{k: v for k, v in decoded.items() if not k.startswith(_MASK_FEATURES)},
            "image": image,
            "mask": tf.ensure_shape(fov[..., 0], [size, size]),
            "grade": tf.cast(decoded["grade"], tf.float32),
        }
        if lesion_masks:
            stacked = tf.stack([decoded[tfrecords.MASK_PREFIX + t] for t in LESION_TYPES], -1)
            masks = _resized(stacked, size, "nearest")
            element["lesion_masks"] = tf.ensure_shape(masks, [size, size, len(LESION_TYPES)])
            element["annotated"] = tf.stack(
                [decoded[tfrecords.HAS_MASK_PREFIX + t] for t in LESION_TYPES]
            )
        return element

    return load


_MASK_FEATURES = (tfrecords.MASK_PREFIX, tfrecords.HAS_MASK_PREFIX)


def _keep_image_ids(image_ids: Sequence[str]) -> Callable[[Element], tf.Tensor]:
    """tf.data predicate on parsed features: the example's image id is one of ``image_ids``."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(image_ids), tf.string), tf.ones(len(image_ids), tf.int32)
        ),
        default_value=0,
    )
    return lambda features: table.lookup(features["image_id"]) > 0


def _tfrecord_files(
    pattern_or_dir: str,
    split: str | None,
    training: bool,
) -> list[str]:
    if split is None and tf.io.gfile.isdir(pattern_or_dir):
        split = "train" if training else "validation"
    return tfrecords.list_shards(pattern_or_dir, split)


def _parsed_tfrecords(
    files: Sequence[str],
    config: PipelineConfig,
    training: bool,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """Raw parsed features; sharded by file when there are enough files, else by example.

    Training interleaves shuffled files; evaluation reads files in order, one after another.
    """
    num_pipelines = (
        input_context.num_input_pipelines if input_context is not None else config.num_shards
    )
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    by_file = len(files) >= num_pipelines
    if by_file:
        dataset = _shard(dataset, config, input_context)
    if training and len(files) > 1:
        dataset = dataset.shuffle(len(files), seed=_seed(config, 1))
    if training:
        dataset = dataset.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=_deterministic(config),
        )
    else:
        dataset = dataset.flat_map(tf.data.TFRecordDataset)  # file order kept
    if not by_file:
        dataset = _shard(dataset, config, input_context)
    return _map(dataset, tfrecords.parse_features, config)


def _grade_counts(files: Sequence[str]) -> dict[int, int]:
    """Images per grade: from the `prepare` manifest next to the shards, else by reading."""
    folder = os.path.dirname(files[0])
    manifest_path = os.path.join(folder, "manifest.json")
    if tf.io.gfile.exists(manifest_path):
        with tf.io.gfile.GFile(manifest_path) as f:
            manifest = json.load(f)
        counts: dict[int, int] = {}
        names = {os.path.basename(p) for p in files}
        for split in manifest["splits"].values():
            if names & set(split["shards"]):
                for grade, n in split["grades"].items():
                    counts[int(grade)] = counts.get(int(grade), 0) + n
        return counts
    spec = {"grade": tfrecords.FEATURE_SPEC["grade"]}
    grades = tf.data.TFRecordDataset(list(files)).map(
        lambda s: tf.io.parse_single_example(s, spec)["grade"]
    )
    all_grades = np.fromiter(grades.as_numpy_iterator(), np.int64)
    values, counts_array = np.unique(all_grades, return_counts=True)
    return {int(g): int(n) for g, n in zip(values, counts_array, strict=True)}


def dataset_from_tfrecords(
    pattern_or_dir: str,
    config: PipelineConfig,
    training: bool,
    input_context: tf.distribute.InputContext | None = None,
    split: str | None = None,
) -> tf.data.Dataset:
    """Batches read from `drscreen prepare` shards.

    Parameters
    ----------
    pattern_or_dir:
        Glob pattern of shards, or a `prepare` output folder (then `split` picks the shards;
        by default ``"train"`` when training, else ``"validation"``).
    config:
        Pipeline settings; images stored at another size are resized to `image_size`.
    training:
        Shuffle, resample, augment and drop the last partial batch (and skip examples
        without a grade); otherwise one ordered pass.
    input_context:
        Distributed input context: shards by file (by example when files are fewer than
        input pipelines) and gives the per-replica batch size.
    split:
        Split name when `pattern_or_dir` is a folder.

    Returns
    -------
    tf.data.Dataset
        ``(images float32 (B, S, S, 3) in [0, 255], grades float32 (B,))``.
    """
    files = _tfrecord_files(pattern_or_dir, split, training)
    load = _tfrecord_loader(config.image_size)
    parsed = _parsed_tfrecords(files, config, training, input_context)
    if not training:
        dataset = _cache(_map(parsed, load, config), config, "")
        dataset = dataset.batch(_batch_size(config, input_context))
        return dataset.map(_to_pair).prefetch(tf.data.AUTOTUNE)
    if config.resample:
        counts = {g: n for g, n in _grade_counts(files).items() if 0 <= g < NUM_GRADES and n}
        if not counts:
            raise ValueError(f"{pattern_or_dir}: no graded examples to train on")
        streams = {
            g: _cache(
                _map(parsed.filter(lambda f, g=g: tf.equal(f["grade"], g)), load, config),
                config,
                f"-grade{g}",
            )
            for g in counts
        }
    else:
        graded = parsed.filter(lambda f: f["grade"] >= 0)
        streams = {-1: _cache(_map(graded, load, config), config, "")}
        counts = {-1: 1}
    return _training_batches(streams, counts, config, input_context)


def dataset_for_evaluation(
    source: Source,
    config: PipelineConfig,
    lesion_masks: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """One ordered pass over all images, keeping identifiers and the field-of-view mask.

    Parameters
    ----------
    source:
        Records (image files), or a `PreparedSplit` of a ``drscreen prepare`` folder (only
        its shards of ``split``, only its ``image_ids`` when given).
    config:
        Pipeline settings (augmentation, shuffling and resampling are not used).
    lesion_masks:
        Also yield the lesion masks, cropped exactly like their images: records decode each
        photograph once for image, FOV and masks, cropped together by the photograph's own
        field-of-view box; prepared examples carry them already cropped.
    input_context:
        Distributed input context, as in `dataset_from_records`.

    Returns
    -------
    tf.data.Dataset
        Batches of dicts: ``image`` float32 (B, S, S, 3) in [0, 255], ``mask`` float32
        (B, S, S) field of view, ``grade`` float32 (B,) (-1 when missing), ``image_id``,
        ``patient_id`` and ``eye`` strings (B,), ``problem`` strings (B,) (why the
        photograph is refused: its image is black; "" when usable), ``path`` (B,) for
        records; with `lesion_masks`, ``lesion_masks`` uint8
        (B, S, S, T) of 0/1 and ``annotated`` bool (B, T) for the T types of
        `drscreen.data.lesions.LESION_TYPES` (a type not annotated has an all-zero mask).
    """
    if isinstance(source, PreparedSplit):
        files = tfrecords.list_shards(source.folder, source.split)
        parsed = _parsed_tfrecords(files, config, False, input_context)
        if source.image_ids is not None:
            parsed = parsed.filter(_keep_image_ids(source.image_ids))
        load = _tfrecord_loader(config.image_size, lesion_masks)
        dataset = _cache(_map(parsed, load, config), config, "")
    else:
        _check_records(source, False)
        if lesion_masks:
            dataset = _decoded_records_with_masks(source, config, input_context)
        else:
            dataset = _decoded_records(source, config, False, input_context, "")
    dataset = dataset.batch(_batch_size(config, input_context))
    return dataset.map(_to_evaluation).prefetch(tf.data.AUTOTUNE)
