"""Grades, referable-DR probabilities and heatmap overlays for image files (`drscreen predict`).

Loads a saved model (a ``.keras`` file, or a run directory holding ``best.keras``), then for
every photograph: `drscreen.data.image_io.load_rgb`, `drscreen.data.fundus.
crop_to_field_of_view_box` to the model's input size, the test-time views of
`drscreen.heatmaps.tta.tta_compute` and the gradability gate (`drscreen.models.quality`, the
run's ``quality.json`` else the shipped gate) in batches.

Every photograph given gets one row of ``predictions.csv`` and a place in ``report.html`` (the
per-patient referral report, `drscreen.commands.referral_report`, headed by the model card):
a file that cannot be used (not a regular file, unreadable, grayscale, too small, no field of
view) and a photograph the gate refuses are **cannot grade**, with the reason, and carry no
grade, probability or uncertainty (``raw_grade`` keeps the network's output on a decoded
photograph whatever the gate says: never a result where ``gradable`` is 0). Columns: image,
patient, eye, decision, reason, grade and referable_probability of the plain image,
uncertainty (the spread of the probability over the views), quality, gradable, raw_grade.
Each decoded photograph also gets ``<stem>_heatmap.png``: the view-averaged heatmap mapped
back onto the photograph, brought to `MIN_READABLE_SIDE`-`READABLE_SIDE` px, beside the plain
photograph, with a colour scale, and the strongest lesion candidates ringed unless it cannot
be graded (`drscreen.heatmaps.overlay.photograph_panel`, `candidates_to_mark`). For a run with
a lesion student (``lesions.keras``) it also gets ``<stem>_lesions.png``: its lesion
probability (the exports' ``lesions`` output of the plain image) on a fixed 0-1 scale, its
peaks of at least 0.5 ringed unless it cannot be graded
(`drscreen.evaluation.lesion_student.probable_lesions`).

The output folder holds one run's results: it is built in a staging folder and swapped in
whole (`drscreen.data.staging`), replacing an earlier ``predict`` output; a folder holding
other files is refused.
"""

import csv
import dataclasses
import os
import stat
import sys
from typing import TextIO

import numpy as np
import tensorflow as tf

from drscreen.commands import referral_report
from drscreen.data.fundus import (
    NO_FIELD_OF_VIEW_REASON,
    crop_to_field_of_view_box,
    has_field_of_view,
)
from drscreen.data.gradability import gradability_features
from drscreen.data.image_io import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from drscreen.data.staging import staged_folder
from drscreen.evaluation.lesion_student import probable_lesions
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.evaluation.referral import tta_spread
from drscreen.heatmaps.api import METHODS
from drscreen.heatmaps.overlay import photograph_panel, save_image
from drscreen.heatmaps.tta import VIEW_SETS, tta_compute
from drscreen.models.calibration import Calibration, resolve_calibration
from drscreen.models.lesion_map import lesion_map
from drscreen.models.model_card import card_html, model_card
from drscreen.models.quality import resolve_quality_gate
from drscreen.models.runs import (
    load_model,
    model_input_size,
    run_calibration,
    run_lesion_model,
    run_quality_gate,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
PREDICTIONS_FILE = "predictions.csv"
COLUMNS = (
    "image",
    "patient",
    "eye",
    "decision",
    "reason",
    "grade",
    "referable_probability",
    "uncertainty",
    "quality",
    "gradable",
    "raw_grade",
)


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """What `predict` runs and where it writes.

    Attributes
    ----------
    model_path:
        A ``.keras`` file, or a run directory containing ``best.keras``.
    images:
        One image file, or a directory whose image files (by extension) are all used.
    out_dir:
        Output directory: absent, empty, or an earlier ``predict`` output (replaced whole).
    method:
        Heatmap method, one of `drscreen.heatmaps.METHODS`.
    batch_size:
        Images per network batch.
    calibration:
        Grade -> referable-DR probability; None takes the run directory's
        ``calibration.json`` (fitted on validation by training), else the default.
    max_image_pixels:
        Photographs with more pixels (by their header) are refused before decoding.
    tta:
        Test-time views (`drscreen.heatmaps.tta.VIEW_SETS`) behind the heatmap and the
        uncertainty.
    referral_sensitivity:
        The run's validation operating point that refers an eye
        (`drscreen.commands.referral_report.operating_point`).
    patients_csv:
        A CSV of image, patient and eye (`referral_report.read_patients`); images it does not
        list, and every image without it, are grouped by their Kaggle-style names.
    """

    model_path: str
    images: str
    out_dir: str
    method: str = "sensitivity"
    batch_size: int = 8
    calibration: Calibration | None = None
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    tta: str = "flips"
    referral_sensitivity: float = 0.90
    patients_csv: str = ""

    def __post_init__(self):
        if not 0.0 < self.referral_sensitivity < 1.0:
            raise ValueError(
                f"referral_sensitivity must be in (0, 1), got {self.referral_sensitivity}"
            )
        if self.tta not in VIEW_SETS:
            raise ValueError(f"tta {self.tta!r} is not one of {', '.join(VIEW_SETS)}")
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be >= 1, got {self.max_image_pixels}")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One photograph's result: graded (``grade``, ``referable_probability`` and
    ``uncertainty`` set), or **cannot grade** with its ``reason`` (those three None);
    ``quality`` and ``raw_grade`` are None when the file could not be used."""

    image: str
    patient: str
    eye: str
    decision: str
    reason: str = ""
    grade: float | None = None
    referable_probability: float | None = None
    uncertainty: float | None = None
    quality: float | None = None
    gradable: bool = False
    raw_grade: float | None = None
    overlay_path: str = ""
    lesions_path: str = ""
    """The lesion-map panel; "" for a model without a lesion student."""


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """One prediction per photograph given, in input order."""

    predictions: tuple[Prediction, ...]

    @property
    def cannot_grade(self) -> tuple[Prediction, ...]:
        """The photographs that got no grade, each with its reason."""
        return tuple(p for p in self.predictions if p.decision == referral_report.CANNOT_GRADE)


def _not_a_file(path: str) -> str | None:
    """Why ``path`` is not an image file that can be read, None when it is a regular file
    (found by ``stat`` alone: a FIFO is never opened, so it cannot block the run)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if os.path.islink(path):
            return f"a symbolic link that leads nowhere ({error.strerror})"
        return f"cannot be read ({error.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory, not an image file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not an image file"
    return "not a regular file"


def list_images(images: str) -> list[tuple[str, str | None]]:
    """The photographs named by ``images`` (a file, or a directory's entries with an image
    extension, sorted), each with why it cannot be read (None for a regular file): a
    directory, FIFO or broken or looping symbolic link with an image name is listed, not
    skipped silently.

    Raises
    ------
    FileNotFoundError
        When ``images`` does not exist, or a directory holds no image name.
    """
    if os.path.isdir(images):
        names = sorted(n for n in os.listdir(images) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise FileNotFoundError(f"{images}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        paths = [os.path.join(images, name) for name in names]
    elif os.path.lexists(images):
        paths = [images]
    else:
        raise FileNotFoundError(f"{images}: no such image file or directory")
    return [(path, _not_a_file(path)) for path in paths]


def _overlay_names(path: str, taken: set[str]) -> tuple[str, str]:
    """``<stem>_heatmap.png`` and ``<stem>_lesions.png`` (the file name instead of the stem
    when two images share a stem)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem not in taken else os.path.basename(path)
    taken.add(name)
    return f"{name}_heatmap.png", f"{name}_lesions.png"


@dataclasses.dataclass
class _Batch:
    """Photographs decoded and cropped, waiting for the network."""

    paths: list = dataclasses.field(default_factory=list)
    photographs: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    images: list = dataclasses.field(default_factory=list)
    masks: list = dataclasses.field(default_factory=list)


def _cannot_read(path: str, reason: str, place) -> Prediction:
    patient, eye = place(path)
    return Prediction(path, patient, eye, referral_report.CANNOT_GRADE, reason)


def predict(config: PredictConfig, progress: TextIO | None = None) -> PredictResult:
    """Run ``config``'s model over its images; write the CSV, the overlays and the report.

    A progress line goes to ``progress`` (default: standard error).

    Raises
    ------
    FileNotFoundError
        When the model or the images are missing (a bad photograph is a row instead).
    ValueError
        When the output folder holds other files, or the model or patients CSV is unusable.
    drscreen.data.staging.OutOfSpaceError
        When the disk fills up; the output folder is left as it was.
    """
    progress = progress or sys.stderr
    model = load_model(config.model_path)
    size = model_input_size(model)
    given = {} if config.calibration is None else config.calibration.as_overrides("config")
    calibration, _ = resolve_calibration(run_calibration(config.model_path), given)
    listed_paths = list_images(config.images)
    gate, _ = resolve_quality_gate(run_quality_gate(config.model_path))
    rule = referral_report.operating_point(config.model_path, config.referral_sensitivity)
    listed = referral_report.read_patients(config.patients_csv) if config.patients_csv else {}
    views = VIEW_SETS[config.tta]
    card = model_card(config.model_path)
    student = run_lesion_model(config.model_path, size)

    def place(path: str) -> tuple[str, str]:
        return listed.get(os.path.basename(path), referral_report.patient_and_eye(path))

    def screen(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        view_grades, heatmaps = tta_compute(model, images, config.method, masks, views)
        return view_grades, heatmaps, gate.quality(gradability_features(images, masks))

    heatmap_fn = tf.function(
        screen,
        input_signature=[
            tf.TensorSpec((None, size, size, 3), tf.float32),
            tf.TensorSpec((None, size, size), tf.float32),
        ],
    )
    lesion_fn = None
    if student is not None:
        lesion_fn = tf.function(
            lambda images, masks: lesion_map(student, images, masks),
            input_signature=heatmap_fn.input_signature,
        )
    results: dict[str, Prediction] = {}
    previews: dict[str, tuple[bytes, bytes]] = {}
    overlay_names: set[str] = set()
    done = 0

    def space_needed(written: int) -> int | None:
        return written * len(listed_paths) // done if done else None

    def run_batch(batch: _Batch, out_dir: str) -> None:
        view_grades, heatmaps, quality = heatmap_fn(np.stack(batch.images), np.stack(batch.masks))
        view_probabilities = calibration.probability(view_grades.numpy())
        uncertainty = tta_spread(view_probabilities)
        lesion_maps = (
            None if lesion_fn is None else lesion_fn(np.stack(batch.images), np.stack(batch.masks))
        )
        side = referral_report.DISPLAY_SIDE
        for index, path in enumerate(batch.paths):
            heatmap, mask = heatmaps[index].numpy(), batch.masks[index]
            gradable = not bool(gate.ungradable(float(quality[index])))
            # no lesion is pointed at on a photograph that cannot be graded
            marks = candidates_to_mark(heatmap, mask > 0.5) if gradable else None
            photograph, box = batch.photographs[index], batch.boxes[index]
            heatmap_name, lesions_name = _overlay_names(path, overlay_names)
            overlay_path = os.path.join(out_dir, heatmap_name)
            save_image(overlay_path, photograph_panel(photograph, heatmap, box, mask, marks))
            shown = photograph_panel(
                photograph, heatmap, box, mask, marks, max_side=side, min_side=side
            )
            lesions_path, lesions_preview = "", b""
            if lesion_maps is not None:
                lesions_path = os.path.join(out_dir, lesions_name)
                lesions = lesion_maps[index].numpy()
                rings = probable_lesions(lesions, mask > 0.5) if gradable else None
                save_image(
                    lesions_path, photograph_panel(photograph, lesions, box, mask, rings, top=1.0)
                )
                lesions_preview = referral_report.preview_jpeg(
                    photograph_panel(
                        photograph, lesions, box, mask, rings, top=1.0,
                        max_side=side, min_side=side,
                    )
                )  # fmt: skip
            previews[path] = (referral_report.preview_jpeg(shown), lesions_preview)
            grade = float(view_grades[index, 0])
            probability = float(view_probabilities[index, 0])
            decision = referral_report.eye_decision(gradable, grade, probability, rule)
            patient, eye = place(path)
            graded = dict(
                grade=grade, referable_probability=probability,
                uncertainty=float(uncertainty[index]),
            ) if gradable else {}  # fmt: skip
            reason = (
                ""
                if gradable
                else f"quality {float(quality[index]):.3f} ≤ the gate's threshold "
                f"{gate.threshold:.3f}: retake the photograph"
            )
            results[path] = Prediction(
                path, patient, eye, decision, reason, quality=float(quality[index]),
                gradable=gradable, raw_grade=grade, overlay_path=overlay_path,
                lesions_path=lesions_path, **graded,
            )  # fmt: skip

    with staged_folder(config.out_dir, PREDICTIONS_FILE, space_needed) as staging:
        for start in range(0, len(listed_paths), config.batch_size):
            batch = _Batch()
            for path, unreadable in listed_paths[start : start + config.batch_size]:
                if unreadable is not None:
                    results[path] = _cannot_read(path, unreadable, place)
                    continue
                try:
                    photograph = load_rgb(path, max_pixels=config.max_image_pixels)
                    image, mask, box = crop_to_field_of_view_box(photograph, size)
                except ImageError as error:
                    results[path] = _cannot_read(path, error.reason, place)
                    continue
                if not has_field_of_view(mask):
                    results[path] = _cannot_read(path, NO_FIELD_OF_VIEW_REASON, place)
                    continue
                batch.paths.append(path)
                batch.photographs.append(photograph)
                batch.boxes.append(tuple(int(value) for value in box.numpy()))
                batch.images.append(image.numpy())
                batch.masks.append(mask.numpy())
            if batch.paths:
                run_batch(batch, staging)
            done = min(start + config.batch_size, len(listed_paths))
            refused = sum(not p.gradable for p in results.values())
            progress.write(
                f"\rdrscreen predict: {done}/{len(listed_paths)} images, {refused} cannot be graded"
            )
            progress.flush()
        progress.write("\n")
        predictions = tuple(results[path] for path, _ in listed_paths)
        _write_predictions(os.path.join(staging, PREDICTIONS_FILE), predictions)
        eyes = [_eye_result(p, *previews.get(p.image, (b"", b""))) for p in predictions]
        referral_report.write_report(referral_report.patients(eyes), rule, staging, card_html(card))
    return PredictResult(
        tuple(
            dataclasses.replace(
                p,
                overlay_path=p.overlay_path.replace(staging, config.out_dir, 1),
                lesions_path=p.lesions_path.replace(staging, config.out_dir, 1),
            )
            for p in predictions
        )
    )


def _eye_result(
    prediction: Prediction, preview: bytes, lesions_preview: bytes
) -> referral_report.EyeResult:
    """The report's view of a prediction (its fields are a prediction's, and the previews)."""
    previews = {"preview": preview, "lesions_preview": lesions_preview}
    shared = {
        field.name: getattr(prediction, field.name)
        for field in dataclasses.fields(referral_report.EyeResult)
        if field.name not in previews
    }
    return referral_report.EyeResult(**shared, **previews)


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _write_predictions(path: str, predictions: tuple[Prediction, ...]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for p in predictions:
            writer.writerow(
                (
                    p.image,
                    p.patient,
                    p.eye,
                    p.decision,
                    p.reason,
                    _text(p.grade),
                    _text(p.referable_probability),
                    _text(p.uncertainty),
                    _text(p.quality),
                    int(p.gradable),
                    _text(p.raw_grade),
                )
            )
