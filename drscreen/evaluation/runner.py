"""Streams a dataset through a model: grades, heatmaps per method, per-image reductions.

Owns the evaluation loop: batches of images (from `drscreen.data.pipeline`) and, when the
records carry them, their lesion masks cropped exactly like the images, go through a scoring
function and one heatmap function per method; each batch is reduced at once by the
accumulators of `drscreen.evaluation.streaming` (grades and predictions, lesion candidates,
heatmap-quality figures, deletion/insertion curves) and its heatmaps are dropped, so memory
does not grow with the dataset. A progress line with images/s goes to stderr.

Models enter as callables (`HeatmapFunction`, `ScoreFunction`); `keras_functions` builds
them for a Keras model. `evaluate` is the library side of ``drscreen evaluate``: it loads the
model, picks the evaluated and validation records, streams both, and hands the accumulated
results to the metric modules, `figures` and `report`. Metrics themselves are computed by the
other modules of this package, never here.
"""

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.fundus import crop_square, field_of_view_box, field_of_view_mask
from drscreen.data.image_io import load_mask_image
from drscreen.data.lesions import LESION_TYPES, REFERABLE_GRADE
from drscreen.data.readers import binarize_mask, read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.splits import split_by_patient
from drscreen.data.tfrecords import MISSING_GRADE
from drscreen.evaluation import (
    calibration,
    comparison,
    figures,
    heatmap_quality,
    lesions,
    patients,
    report,
    screening,
    streaming,
)
from drscreen.heatmaps import METHODS, compute
from drscreen.models.calibration import Calibration, resolve_calibration
from drscreen.models.runs import load_model, model_input_size, run_calibration

# (images float32 (N, S, S, 3), FOV masks float32 (N, S, S)) -> (grades (N,), heatmaps (N, S, S))
HeatmapFunction = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
# images float32 (N, S, S, 3) -> grades (N,)
ScoreFunction = Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """How a dataset is streamed through a model.

    Attributes
    ----------
    image_size:
        Side of the square images the model takes.
    batch_size:
        Images per batch.
    lesion_metrics:
        Reduce heatmaps against the records' lesion masks (records without masks are
        skipped by the lesion accumulators).
    perturbation_images:
        Deletion/insertion curves are computed on the first this many images of each method
        (each costs 2 · (steps + 1) forward passes); 0 for none.
    perturbation:
        Steps and baseline of the deletion/insertion curves.
    candidates:
        How lesion candidates are cut from heatmaps.
    pointing_tolerance_px:
        Tolerance of the pointing game.
    progress:
        Print a progress line to stderr.
    """

    image_size: int
    batch_size: int = 16
    lesion_metrics: bool = True
    perturbation_images: int = 32
    perturbation: heatmap_quality.PerturbationConfig = heatmap_quality.PerturbationConfig()
    candidates: lesions.CandidateConfig = lesions.CandidateConfig()
    pointing_tolerance_px: int = 3
    progress: bool = True

    def __post_init__(self):
        if self.image_size < 1 or self.batch_size < 1:
            raise ValueError(
                f"image_size {self.image_size} and batch_size {self.batch_size} must be >= 1"
            )
        if self.perturbation_images < 0:
            raise ValueError(f"perturbation_images {self.perturbation_images} must be >= 0")


@dataclasses.dataclass
class MethodResult:
    """What one heatmap method left after the stream.

    Attributes
    ----------
    lesions:
        Lesion-level and heatmap-quality accumulator, None without lesion masks.
    perturbation:
        Deletion/insertion accumulator, None when no curve was computed.
    seconds:
        Wall time spent computing this method's heatmaps (model passes included), over all
        batches but the first when there are several (the first one traces the graph).
    images:
        Images that `seconds` covers.
    """

    lesions: streaming.LesionAccumulator | None
    perturbation: streaming.PerturbationAccumulator | None
    seconds: float = 0.0
    images: int = 0

    @property
    def seconds_per_image(self) -> float | None:
        """Mean heatmap time per image, graph tracing excluded when there were several batches."""
        return self.seconds / self.images if self.images else None

    def lesion_metrics(self) -> dict:
        """`LesionAccumulator.metrics()`, empty without lesion masks."""
        return {} if self.lesions is None or not self.lesions.count else self.lesions.metrics()

    def perturbation_metrics(self) -> dict:
        """`PerturbationAccumulator.metrics()`, empty when no curve was computed."""
        if self.perturbation is None or not self.perturbation.count:
            return {}
        return self.perturbation.metrics()

    def scores(self) -> comparison.MethodScores:
        """The method's figures for the comparison table."""
        return comparison.MethodScores(
            self.lesion_metrics(), self.perturbation_metrics(), self.seconds_per_image
        )


@dataclasses.dataclass
class RunResult:
    """Everything one stream produced: screening arrays and one result per method."""

    screening: streaming.ScreeningAccumulator
    methods: dict[str, MethodResult]
    seconds: float
    has_lesion_masks: bool

    @property
    def images(self) -> int:
        """Images streamed."""
        return self.screening.count


def heatmap_function(model: keras.Model, method: str, **options) -> HeatmapFunction:
    """A compiled `drscreen.heatmaps.compute` of ``method`` for ``model``."""
    if method not in METHODS:
        raise ValueError(f"unknown heatmap method {method!r}; methods: {', '.join(METHODS)}")

    @tf.function(reduce_retracing=True)
    def heatmaps(images: tf.Tensor, fov_masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return compute(model, images, method, fov_masks=fov_masks, **options)

    return heatmaps


def score_function(model: keras.Model) -> ScoreFunction:
    """The compiled grade regression (N,) of ``model`` in inference mode."""

    @tf.function(reduce_retracing=True)
    def scores(images: tf.Tensor) -> tf.Tensor:
        return model(images, training=False)[:, 0]

    return scores


def keras_functions(
    model: keras.Model, methods: Sequence[str]
) -> tuple[ScoreFunction, dict[str, HeatmapFunction]]:
    """The score function and one heatmap function per method of a Keras model."""
    return score_function(model), {method: heatmap_function(model, method) for method in methods}


def has_lesion_masks(records: Sequence[FundusRecord]) -> bool:
    """Whether any record carries a lesion mask."""
    return any(record.lesion_masks for record in records)


def _load_masks(records: Sequence[FundusRecord]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """numpy loader of record `index`'s binary masks, stacked (H, W, T) in `LESION_TYPES` order."""

    def load(index: np.ndarray, shape: np.ndarray) -> np.ndarray:
        record = records[int(index)]
        height, width = int(shape[0]), int(shape[1])
        stacked = np.zeros((height, width, len(LESION_TYPES)), np.uint8)
        for channel, lesion in enumerate(LESION_TYPES):
            path = record.lesion_masks.get(lesion)
            if path is None:
                continue
            mask = binarize_mask(load_mask_image(str(path)), record.dataset)
            if mask.shape != (height, width):
                raise ValueError(
                    f"{path}: lesion mask is {mask.shape[0]}x{mask.shape[1]}, its image "
                    f"{record.image_path} is {height}x{width}"
                )
            stacked[..., channel] = mask
        return stacked

    return load


def _decode_with_masks(
    records: Sequence[FundusRecord], image_size: int
) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """tf.data map of (record index, image path) to one cropped element with its masks.

    The photograph is decoded once and its field of view found once; image, FOV and lesion
    masks are cropped together as one uint8 stack, as `crop_to_field_of_view` crops image and
    FOV, so each lesion mask goes through the crop box of its own photograph.
    """
    load = _load_masks(records)
    types = len(LESION_TYPES)

    def decode(index: tf.Tensor, path: tf.Tensor) -> dict[str, tf.Tensor]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        masks = tf.numpy_function(load, [index, tf.shape(image)[:2]], tf.uint8, stateful=False)
        masks = tf.ensure_shape(masks, [None, None, types])
        fov = field_of_view_mask(image)
        stacked = tf.concat(
            [image, tf.cast(fov[..., tf.newaxis] * 255.0, tf.uint8), masks * 255], axis=-1
        )
        cropped = crop_square(stacked, field_of_view_box(fov), image_size)
        cropped = tf.ensure_shape(cropped, [image_size, image_size, 4 + types])
        return {
            "image": tf.cast(tf.round(tf.clip_by_value(cropped[..., :3], 0.0, 255.0)), tf.uint8),
            "mask": tf.cast(cropped[..., 3] > 127.5, tf.uint8),
            "lesion_masks": tf.cast(cropped[..., 4:] > 127.5, tf.uint8),
        }

    return decode


def _dataset_with_masks(
    records: Sequence[FundusRecord], image_size: int, batch_size: int
) -> tf.data.Dataset:
    """`pipeline.dataset_for_evaluation`'s batches of records, plus ``lesion_masks`` uint8
    (B, S, S, T) and ``annotated`` bool (B, T) for the T types of `LESION_TYPES`.

    Decoding and cropping run in a parallel map, batches are prefetched, so they overlap
    the model's heatmap passes.
    """
    decode = _decode_with_masks(records, image_size)
    slices = {
        "index": np.arange(len(records)),
        "path": [r.image_path for r in records],
        "grade": np.array(
            [MISSING_GRADE if r.grade is None else r.grade for r in records], np.float32
        ),
        "image_id": [r.image_id for r in records],
        "patient_id": [r.patient_id for r in records],
        "eye": [r.eye for r in records],
        "annotated": np.array(
            [[lesion in r.lesion_masks for lesion in LESION_TYPES] for r in records], bool
        ),
    }

    def element(record: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        keys = ("grade", "image_id", "patient_id", "eye", "annotated")
        return {**{key: record[key] for key in keys}, **decode(record["index"], record["path"])}

    def to_float(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            **batch,
            "image": tf.cast(batch["image"], tf.float32),
            "mask": tf.cast(batch["mask"], tf.float32),
        }

    dataset = tf.data.Dataset.from_tensor_slices(slices)
    dataset = dataset.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).map(to_float).prefetch(tf.data.AUTOTUNE)


def _tensor_batches(
    records: Sequence[FundusRecord], config: RunnerConfig, with_masks: bool
) -> Iterator[dict[str, tf.Tensor]]:
    if with_masks:
        return iter(_dataset_with_masks(records, config.image_size, config.batch_size))
    settings = pipeline.PipelineConfig(
        image_size=config.image_size, batch_size=config.batch_size, augment=None, seed=0
    )
    return iter(pipeline.dataset_for_evaluation(list(records), settings))


def _to_numpy(batch: Mapping[str, tf.Tensor]) -> dict:
    """A tensor batch as numpy (strings as str), lesion masks as one dict per image."""
    result = {
        key: value.numpy().astype(str) if value.dtype == tf.string else value.numpy()
        for key, value in batch.items()
        if key not in ("lesion_masks", "annotated")
    }
    if "lesion_masks" in batch:
        stacked, annotated = batch["lesion_masks"].numpy(), batch["annotated"].numpy()
        result["lesion_masks"] = [
            {lesion: stacked[i, ..., t] for t, lesion in enumerate(LESION_TYPES) if annotated[i, t]}
            for i in range(stacked.shape[0])
        ]
    return result


def batches(
    records: Sequence[FundusRecord], config: RunnerConfig, with_masks: bool
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluation batches as numpy dicts: the keys of `pipeline.dataset_for_evaluation`
    (``image_id`` etc. as str), plus ``lesion_masks`` (one dict per image) when `with_masks`."""
    for batch in _tensor_batches(records, config, with_masks):
        yield _to_numpy(batch)


class _Progress:
    """A one-line progress display on stderr: images done, total and images/s."""

    def __init__(self, label: str, total: int, enabled: bool):
        self._label, self._total, self._enabled = label, total, enabled
        self._start = time.perf_counter()

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        elapsed = time.perf_counter() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(f"\r{self._label}: {done}/{self._total} images, {rate:.1f} images/s")
        if done >= self._total:
            sys.stderr.write(f", {elapsed:.1f} s\n")
        sys.stderr.flush()


def run(
    records: Sequence[FundusRecord],
    score_fn: ScoreFunction,
    heatmap_fns: Mapping[str, HeatmapFunction],
    config: RunnerConfig,
    label: str = "evaluate",
) -> RunResult:
    """Stream `records` through a model once.

    Parameters
    ----------
    records:
        The photographs to evaluate, in order.
    score_fn:
        Grades of a batch; gives the predictions when `heatmap_fns` is empty, and scores the
        perturbed images of deletion/insertion curves.
    heatmap_fns:
        Method name to heatmap function; the first method's grades are the predictions.
    config:
        Batching, lesion and perturbation settings.
    label:
        Name shown on the progress line.

    Returns
    -------
    The accumulators of the stream; heatmaps themselves are not kept.
    """
    if not records:
        raise ValueError("no records to evaluate")
    with_masks = config.lesion_metrics and bool(heatmap_fns) and has_lesion_masks(records)
    methods = {
        method: MethodResult(
            lesions=streaming.LesionAccumulator(
                candidate_config=config.candidates,
                pointing_tolerance_px=config.pointing_tolerance_px,
            )
            if with_masks
            else None,
            perturbation=streaming.PerturbationAccumulator(
                lambda images: score_fn(tf.constant(images)).numpy(), config.perturbation
            )
            if config.perturbation_images
            else None,
        )
        for method in heatmap_fns
    }
    screening = streaming.ScreeningAccumulator()
    progress = _Progress(label, len(records), config.progress)
    start = time.perf_counter()
    for index, tensors in enumerate(_tensor_batches(records, config, with_masks)):
        images, fov = tensors["image"], tensors["mask"]
        batch = _to_numpy(tensors)
        predictions = None
        for method, heatmap_fn in heatmap_fns.items():
            result = methods[method]
            tick = time.perf_counter()
            grades, heatmaps = heatmap_fn(images, fov)
            grades, heatmaps = grades.numpy(), heatmaps.numpy()
            if index == 1:  # drop the first batch's time, which includes tracing
                result.seconds, result.images = 0.0, 0
            result.seconds += time.perf_counter() - tick
            result.images += heatmaps.shape[0]
            predictions = grades if predictions is None else predictions
            if result.lesions is not None:
                result.lesions.add_batch(
                    batch["image_id"], heatmaps, batch["lesion_masks"], batch["mask"]
                )
            room = config.perturbation_images - (
                result.perturbation.count if result.perturbation is not None else 0
            )
            if result.perturbation is not None and room > 0:
                result.perturbation.add(batch["image"][:room], heatmaps[:room])
        if predictions is None:
            predictions = score_fn(images).numpy()
        screening.add(batch["grade"], predictions, batch["image_id"], batch["patient_id"])
        progress.update(screening.count)
    return RunResult(screening, methods, time.perf_counter() - start, with_masks)


def heatmaps_of(
    records: Sequence[FundusRecord],
    heatmap_fn: HeatmapFunction,
    config: RunnerConfig,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Per batch: the numpy batch of `batches`, its grades (N,) and heatmaps (N, S, S).

    For the few images a report shows (gallery); the stream itself is `run`.
    """
    with_masks = config.lesion_metrics and has_lesion_masks(records)
    for tensors in _tensor_batches(records, config, with_masks):
        grades, heatmaps = heatmap_fn(tensors["image"], tensors["mask"])
        yield _to_numpy(tensors), grades.numpy(), heatmaps.numpy()


# ---- The `drscreen evaluate` command: model + dataset -> metrics.json and report ----------

LESION_METRICS = ("auto", "required", "off")
SPLIT_CHOICES = ("train", "validation", "test", "all")
_DEFAULT_SPLIT = {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0}
_GALLERY_KINDS = 4
_LESION_GALLERY_TITLES = {
    "best": "best (highest relevance mass)",
    "worst": "worst (lowest relevance mass)",
    "false_positive": "false positive (no lesion, highest heatmap max)",
    "miss": "miss (lesions, lowest heatmap max)",
}


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """What `evaluate` evaluates and where it writes.

    Attributes
    ----------
    model:
        A training run directory (holding ``best.keras``) or a ``.keras`` file, loaded with
        `drscreen.models.runs.load_model`.
    data:
        The dataset's root folder, read with `drscreen.data.readers.read_dataset`.
    out:
        Output folder for ``metrics.json``, ``report.md`` and the figures.
    dataset:
        Reader name (`drscreen.data.readers.DATASET_NAMES`).
    validation_data:
        Folder of a validation set (same reader) on which thresholds are chosen; empty: the
        validation split of `data` by patient.
    split:
        Part of `data` evaluated: ``train``, ``validation``, ``test`` (patient-level split of
        `drscreen.data.splits`) or ``all``.
    val_fraction, test_fraction, split_seed:
        The patient-level split; None takes the training run's values from its
        ``config.json`` (so the test split is the one training held out), else 0.15/0.15/0.
    methods:
        Heatmap methods of the plain model; the first one is the report's main heatmap.
    heatmap_aware_model:
        A second run directory or ``.keras`` file, trained heatmap-aware, whose sensitivity
        heatmaps join the comparison table.
    batch_size, image_size:
        Batch size; input size (0: the model's own).
    gallery:
        Cases shown in the overlay gallery (0 for none).
    lesion_metrics:
        ``auto`` (when the dataset has lesion masks), ``required`` (error without masks) or
        ``off``.
    perturbation_images:
        Images per method with deletion/insertion curves.
    n_bootstrap:
        Bootstrap replicates of the AUC confidence intervals.
    command:
        The command line, recorded in the report.
    progress:
        Progress lines on stderr.
    """

    model: str
    data: str
    out: str
    dataset: str = "synthetic"
    validation_data: str = ""
    split: str = "test"
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    methods: tuple[str, ...] = ("sensitivity",)
    heatmap_aware_model: str = ""
    batch_size: int = 16
    image_size: int = 0
    gallery: int = 8
    lesion_metrics: str = "auto"
    perturbation_images: int = 32
    n_bootstrap: int = 1000
    command: str = ""
    progress: bool = True

    def __post_init__(self):
        if self.split not in SPLIT_CHOICES:
            raise ValueError(f"split {self.split!r} is not one of {SPLIT_CHOICES}")
        if self.lesion_metrics not in LESION_METRICS:
            raise ValueError(
                f"lesion_metrics {self.lesion_metrics!r} is not one of {LESION_METRICS}"
            )
        if not self.methods:
            raise ValueError("at least one heatmap method is needed")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown heatmap methods {unknown}; methods: {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"heatmap methods {self.methods} repeat a method")
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("image_size", "gallery", "perturbation_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be >= 1, got {self.n_bootstrap}")


def run_split_settings(model_path: str) -> dict:
    """``val_fraction``, ``test_fraction`` and ``seed`` of the training run's split.

    Read from ``config.json`` next to the model (a run directory's ``data.val_fraction``,
    ``data.test_fraction`` and ``seed``); the defaults 0.15/0.15/0 when there is none.
    """
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
    settings = dict(_DEFAULT_SPLIT)
    config_path = os.path.join(folder, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            run_config = json.load(f)
        data = run_config.get("data", {})
        settings.update(
            {
                key: value
                for key, value in (
                    ("val_fraction", data.get("val_fraction")),
                    ("test_fraction", data.get("test_fraction")),
                    ("seed", run_config.get("seed")),
                )
                if value is not None
            }
        )
    return settings


def select_records(
    config: EvaluationConfig,
) -> tuple[list[FundusRecord], list[FundusRecord], dict[str, str]]:
    """The evaluated records, the validation records and a description of both."""
    problems: list = []
    records = read_dataset(config.dataset, config.data, problems)
    if problems:
        print(
            f"{config.dataset} {config.data}: skipped {len(problems)} unusable rows, "
            f"e.g. {problems[0][0]}: {problems[0][1]}",
            file=sys.stderr,
        )
    if not records:
        raise ValueError(f"data {config.data}: the {config.dataset} reader found no image")
    settings = run_split_settings(config.model)
    val_fraction = settings["val_fraction"] if config.val_fraction is None else config.val_fraction
    test_fraction = (
        settings["test_fraction"] if config.test_fraction is None else config.test_fraction
    )
    seed = settings["seed"] if config.split_seed is None else config.split_seed
    split_text = (
        f"patient-level split (validation {val_fraction:g}, test {test_fraction:g}, "
        f"seed {seed}) of {config.data}"
    )
    parts = split_by_patient(records, val_fraction, test_fraction, seed)
    evaluated = records if config.split == "all" else parts[config.split]
    if config.validation_data:
        validation = read_dataset(config.dataset, config.validation_data)
        validation_text = f"all of {config.validation_data}"
    else:
        validation = parts["validation"]
        validation_text = f"validation part of the {split_text}"
    if not evaluated:
        raise ValueError(
            f"data {config.data}: the {config.split} part of the {split_text} is empty"
        )
    evaluated_text = (
        f"all of {config.data}"
        if config.split == "all"
        else f"{config.split} part of the {split_text}"
    )
    description = {
        "evaluated_images": f"{len(evaluated)} ({evaluated_text})",
        "validation_images": f"{len(validation)} ({validation_text})",
    }
    return evaluated, validation, description


def _has_pairs(patient_ids: np.ndarray) -> bool:
    return np.unique(patient_ids).size < patient_ids.size


def _binary_problem(grades: np.ndarray, name: str) -> str | None:
    """Why the binary tasks cannot be analysed on `grades`, None when they can."""
    for task, min_grade in screening.BINARY_TASKS.items():
        labels = screening.binary_labels(grades, min_grade)
        if labels.all() or not labels.any():
            return (
                f"the {name} images are all {'positive' if labels.any() else 'negative'} for {task}"
            )
    return None


def screening_metrics(
    test: Mapping[str, np.ndarray],
    validation: Mapping[str, np.ndarray] | None,
    n_bootstrap: int = 1000,
    score_calibration: Calibration | None = None,
) -> dict:
    """Image-level, patient-level and calibration sections from `ScreeningAccumulator` arrays.

    The calibration section scores the referable-DR probability of `score_calibration`
    (default: `Calibration()`, the fixed logistic) and records its midpoint and scale.

    Images without a grade (-1) are left out; a section that cannot be computed holds
    ``{"skipped": reason}``.
    """
    score_calibration = score_calibration or Calibration()
    graded = test["grades"] >= 0
    if not graded.any():
        reason = "the dataset has no grades"
        return {"screening": {"skipped": reason}}
    grades, predictions = test["grades"][graded], test["predictions"][graded]
    patient_ids = test["patient_ids"][graded]
    problem = _binary_problem(grades, "evaluated")
    if problem is None and validation is None:
        problem = "no validation data to choose thresholds on"
    if problem is None:
        validation_graded = validation["grades"] >= 0
        validation_grades = validation["grades"][validation_graded]
        validation_predictions = validation["predictions"][validation_graded]
        problem = _binary_problem(validation_grades, "validation")
    if problem is not None:
        return {"screening": {"skipped": problem}}
    pairs = _has_pairs(patient_ids)
    result = {
        "screening": screening.evaluate_screening(
            grades,
            predictions,
            validation_grades,
            validation_predictions,
            patient_ids if pairs else None,
            screening.ScreeningConfig(n_bootstrap=n_bootstrap),
        ),
        "calibration": {
            **calibration.evaluate_calibration(
                screening.binary_labels(grades, REFERABLE_GRADE),
                score_calibration.probability(predictions),
            ),
            **score_calibration.to_dict(),
        },
    }
    if pairs:
        _, worst_grades = patients.patient_scores(grades, patient_ids, "max")
        problem = _binary_problem(worst_grades, "patients'")
        result["patients"] = (
            {"skipped": problem}
            if problem
            else patients.evaluate_patients(grades, predictions, patient_ids)
        )
    return result


def _gallery_targets() -> dict[str, tuple[str, ...]]:
    targets = dict(streaming.DEFAULT_GROUPS)
    targets.update({lesion: (lesion,) for lesion in LESION_TYPES})
    return targets


def _gallery_picks(
    run_result: RunResult, method: str, cases: int
) -> tuple[list[tuple[str, str]], str | None]:
    """(title prefix, image id) of the gallery's cases and the lesion target they show."""
    per_kind = max(1, cases // _GALLERY_KINDS)
    accumulator = run_result.methods[method].lesions
    if accumulator is not None and accumulator.count:
        found = accumulator.metrics()
        for target in _gallery_targets():
            if found.get(target, {}).get("images_with_lesion"):
                ids = accumulator.gallery_ids(target, per_kind)
                picks = [
                    (_LESION_GALLERY_TITLES[kind], image_id)
                    for kind, chosen in ids.items()
                    for image_id in chosen
                ]
                return picks[:cases], target
    arrays = run_result.screening.arrays()
    graded = np.flatnonzero(arrays["grades"] >= 0)
    if graded.size == 0:
        return [], None
    order = graded[np.argsort(arrays["predictions"][graded], kind="stable")]
    positives = [i for i in order if arrays["grades"][i] >= REFERABLE_GRADE]
    negatives = [i for i in order if arrays["grades"][i] < REFERABLE_GRADE]
    kinds = [
        ("referable, highest ŷ", positives[::-1]),
        ("false positive (not referable, highest ŷ)", negatives[::-1]),
        ("miss (referable, lowest ŷ)", positives),
        ("not referable, lowest ŷ", negatives),
    ]
    picks = [
        (title, str(arrays["image_ids"][i])) for title, indices in kinds for i in indices[:per_kind]
    ]
    return picks[:cases], None


def gallery_cases(
    records: Sequence[FundusRecord],
    run_result: RunResult,
    method: str,
    heatmap_fn: HeatmapFunction,
    config: RunnerConfig,
    cases: int,
) -> tuple[list[figures.GalleryCase], str | None]:
    """Best/worst cases, false positives and misses, their heatmaps computed again.

    With lesion masks the cases are chosen by `LesionAccumulator.gallery_ids` on the first
    lesion group or type with lesions (returned second, its masks outlined); otherwise by
    the referable-DR prediction (second value None).
    """
    picks, target = _gallery_picks(run_result, method, cases)
    if not picks:
        return [], None
    wanted = {image_id for _, image_id in picks}
    chosen = [record for record in records if record.image_id in wanted]
    members = _gallery_targets()[target] if target is not None else ()
    shown: dict[str, figures.GalleryCase] = {}
    for batch, grades, heatmaps in heatmaps_of(chosen, heatmap_fn, config):
        for i, image_id in enumerate(batch["image_id"]):
            masks = batch["lesion_masks"][i] if "lesion_masks" in batch else {}
            annotated = [masks[m] for m in members if m in masks]
            mask = np.logical_or.reduce(annotated) if annotated else None
            details = [f"ŷ {grades[i]:.2f}"]
            if batch["grade"][i] >= 0:
                details.insert(0, f"grade {int(batch['grade'][i])}")
            if mask is not None and mask.any():
                mass = heatmap_quality.relevance_mass(heatmaps[i], mask, batch["mask"][i])
                details.append(f"relevance mass {mass:.2f}")
            shown[image_id] = figures.GalleryCase(
                batch["image"][i], heatmaps[i], mask, ", ".join(details)
            )
    return [
        dataclasses.replace(shown[image_id], title=f"{title}\n{image_id}: {shown[image_id].title}")
        for title, image_id in picks
    ], target


def _method_section(result: MethodResult) -> dict:
    return {
        "seconds_per_image": result.seconds_per_image,
        "lesions": result.lesion_metrics(),
        "perturbation": result.perturbation_metrics(),
    }


def _check_input_size(model: keras.Model, path: str, image_size: int) -> None:
    own = model_input_size(model)
    if own != image_size:
        raise ValueError(f"model {path} takes {own} px images, not {image_size} px")


def evaluate(config: EvaluationConfig) -> dict:
    """Evaluate a model on a dataset and write ``metrics.json``, ``report.md`` and figures.

    Thresholds (operating points, kappa grade thresholds) are chosen on the validation
    records and applied to the evaluated ones. Image-level sections need grades; lesion
    sections need lesion masks; a section that cannot be computed says why.

    Returns
    -------
    The metrics written (the ``metrics`` part of ``metrics.json``).
    """
    model = load_model(config.model)
    score_calibration, calibration_source = resolve_calibration(run_calibration(config.model))
    image_size = config.image_size or model_input_size(model)
    _check_input_size(model, config.model, image_size)
    aware_model = None
    if config.heatmap_aware_model:
        aware_model = load_model(config.heatmap_aware_model)
        _check_input_size(aware_model, config.heatmap_aware_model, image_size)
    evaluated, validation, description = select_records(config)
    with_masks = config.lesion_metrics != "off" and has_lesion_masks(evaluated)
    if config.lesion_metrics == "required" and not with_masks:
        raise ValueError(
            f"data {config.data}: the {config.dataset} images evaluated have no lesion masks, "
            "so lesion metrics cannot be computed (datasets with masks: synthetic, idrid, "
            "diaretdb1); use lesion_metrics='auto' or 'off'"
        )
    runner_config = RunnerConfig(
        image_size=image_size,
        batch_size=config.batch_size,
        lesion_metrics=with_masks,
        perturbation_images=config.perturbation_images,
        progress=config.progress,
    )
    start = time.perf_counter()
    score_fn, heatmap_fns = keras_functions(model, config.methods)
    validation_arrays = None
    if validation and any(record.grade is not None for record in validation):
        validation_run = run(
            validation,
            score_fn,
            {},
            dataclasses.replace(runner_config, lesion_metrics=False),
            "validation",
        )
        validation_arrays = validation_run.screening.arrays()
    main = run(evaluated, score_fn, heatmap_fns, runner_config, "evaluate")
    test_arrays = main.screening.arrays()
    metrics = screening_metrics(
        test_arrays, validation_arrays, config.n_bootstrap, score_calibration
    )
    if "calibration" in metrics:
        metrics["calibration"]["source"] = calibration_source
    primary = config.methods[0]
    if with_masks:
        metrics["lesions"] = main.methods[primary].lesion_metrics()
    if main.methods[primary].perturbation_metrics():
        metrics["perturbation"] = main.methods[primary].perturbation_metrics()
    metrics["methods"] = {method: _method_section(r) for method, r in main.methods.items()}
    rows = {method: result.scores() for method, result in main.methods.items()}
    if aware_model is not None:
        aware_score, aware_heatmaps = keras_functions(aware_model, ("sensitivity",))
        aware = run(evaluated, aware_score, aware_heatmaps, runner_config, "heatmap-aware model")
        rows[comparison.HEATMAP_AWARE] = aware.methods["sensitivity"].scores()
        aware_section = screening_metrics(
            aware.screening.arrays(), validation_arrays, config.n_bootstrap
        )
        metrics["heatmap_aware_model"] = {
            "model": config.heatmap_aware_model,
            "screening": aware_section["screening"],
            "sensitivity": _method_section(aware.methods["sensitivity"]),
        }
    metrics["images"] = main.images
    metrics["seconds"] = time.perf_counter() - start

    os.makedirs(config.out, exist_ok=True)
    drawn: dict[str, str] = {}
    if "auc" in metrics["screening"].get("referable_dr", {}):
        drawn["ROC curves (operating points chosen on validation)"] = figures.plot_roc(
            metrics["screening"], os.path.join(config.out, "roc.png")
        )
        drawn["Calibration of the referable-DR probability"] = figures.plot_reliability(
            metrics["calibration"], os.path.join(config.out, "calibration.png")
        )
    if any("froc" in entry for entry in metrics.get("lesions", {}).values()):
        drawn[f"Lesion FROC curves, {primary} heatmaps"] = figures.plot_froc(
            metrics["lesions"], os.path.join(config.out, "froc.png")
        )
    if config.gallery:
        cases, target = gallery_cases(
            evaluated, main, primary, heatmap_fns[primary], runner_config, config.gallery
        )
        chosen_by = (
            f"cases chosen on {target.replace('_', ' ')}, outlined in magenta"
            if target is not None
            else "cases chosen by the referable-DR prediction ŷ"
        )
        if cases:
            drawn[f"Gallery of {primary} heatmaps ({chosen_by})"] = figures.plot_gallery(
                cases, os.path.join(config.out, "gallery.png")
            )
    context = {
        "dataset": f"{config.dataset} ({config.data})",
        "model": config.model,
        "command": config.command or "drscreen.evaluation.runner.evaluate",
        "image size": f"{image_size} px",
        "heatmap methods": ", ".join(config.methods),
        **description,
    }
    if config.heatmap_aware_model:
        context["heatmap-aware model"] = config.heatmap_aware_model
    if "skipped" in metrics["screening"]:
        context["image-level metrics"] = f"skipped: {metrics['screening']['skipped']}"
    if not with_masks:
        context["lesion-level metrics"] = (
            "off" if config.lesion_metrics == "off" else "skipped: no lesion masks"
        )
    report.write_report(config.out, metrics, drawn, comparison.comparison_rows(rows), context)
    return metrics
