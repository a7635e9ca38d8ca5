"""Streams a data source through a model: grades, heatmaps per method, per-image reductions.

Owns the evaluation loop: batches of images and, when the source has them, their lesion masks
cropped exactly like the images (`drscreen.data.pipeline.dataset_for_evaluation`) go through a
scoring function and one heatmap function per method; each batch is reduced at once by the
accumulators of `drscreen.evaluation.streaming` (grades and predictions, lesion candidates,
heatmap-quality figures, deletion/insertion curves) and its heatmaps are dropped, so memory
does not grow with the dataset. A progress line with images/s goes to stderr.

Models enter as callables (`HeatmapFunction`, `ScoreFunction`), so any map producer can be
evaluated; `keras_functions` builds them for a Keras model. Metrics are assembled from the
accumulated results by `drscreen.evaluation.sections`, never here.
"""

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.lesions import LESION_TYPES
from drscreen.data.sources import Source, has_lesion_masks, source_size
from drscreen.evaluation import heatmap_quality, lesions, streaming
from drscreen.heatmaps import METHODS, compute

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
        Reduce heatmaps against the source's lesion masks (images without masks are
        skipped by the lesion accumulators).
    perturbation_images:
        Deletion/insertion curves are computed on the first this many images of each method
        (each costs 2 · (steps + 1) forward passes); 0 for none.
    perturbation:
        Steps and baseline of the deletion/insertion curves.
    candidates:
        How lesion candidates are cut from heatmaps; passed as it is to
        `streaming.LesionAccumulator`.
    method_candidates:
        Per heatmap method, a `candidates` of its own (e.g. each method's smoothing chosen on
        validation); methods not listed use `candidates`.
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
    method_candidates: Mapping[str, lesions.CandidateConfig] = dataclasses.field(
        default_factory=dict
    )
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
    model: keras.Model, methods: tuple[str, ...] | list[str]
) -> tuple[ScoreFunction, dict[str, HeatmapFunction]]:
    """The score function and one heatmap function per method of a Keras model."""
    return score_function(model), {method: heatmap_function(model, method) for method in methods}


def _tensor_batches(source: Source, config: RunnerConfig, with_masks: bool) -> tf.data.Dataset:
    settings = pipeline.PipelineConfig(
        image_size=config.image_size, batch_size=config.batch_size, augment=None, seed=0
    )
    return pipeline.dataset_for_evaluation(source, settings, lesion_masks=with_masks)


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
    source: Source, config: RunnerConfig, with_masks: bool
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluation batches as numpy dicts: the keys of `pipeline.dataset_for_evaluation`
    (``image_id`` etc. as str), plus ``lesion_masks`` (one dict per image) when `with_masks`."""
    for batch in _tensor_batches(source, config, with_masks):
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
    source: Source,
    score_fn: ScoreFunction,
    heatmap_fns: Mapping[str, HeatmapFunction],
    config: RunnerConfig,
    label: str = "evaluate",
) -> RunResult:
    """Stream `source` through a model once.

    Parameters
    ----------
    source:
        The photographs to evaluate (records or a prepared split), in order.
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
    total = source_size(source)
    if not total:
        raise ValueError("no images to evaluate")
    with_masks = config.lesion_metrics and bool(heatmap_fns) and has_lesion_masks(source)
    methods = {
        method: MethodResult(
            lesions=streaming.LesionAccumulator(
                candidate_config=config.method_candidates.get(method, config.candidates),
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
    progress = _Progress(label, total, config.progress)
    start = time.perf_counter()
    for index, tensors in enumerate(_tensor_batches(source, config, with_masks)):
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
    source: Source,
    heatmap_fn: HeatmapFunction,
    config: RunnerConfig,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Per batch: the numpy batch of `batches`, its grades (N,) and heatmaps (N, S, S).

    For the few images a report shows (gallery); the stream itself is `run`.
    """
    with_masks = config.lesion_metrics and has_lesion_masks(source)
    for tensors in _tensor_batches(source, config, with_masks):
        grades, heatmaps = heatmap_fn(tensors["image"], tensors["mask"])
        yield _to_numpy(tensors), grades.numpy(), heatmaps.numpy()
