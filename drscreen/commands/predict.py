"""Grades, referable-DR probabilities and heatmap overlays for image files (`drscreen predict`).

Loads a saved model (a ``.keras`` file, or a run directory holding ``best.keras``), then for
every photograph: `drscreen.data.image_io.load_rgb`, `drscreen.data.fundus.
crop_to_field_of_view_box` to the model's input size, the test-time views of
`drscreen.heatmaps.tta.tta_compute` and the gradability gate (`drscreen.models.quality`, the
run's ``quality.json`` else the shipped gate) in batches, and writes ``predictions.csv``
(image, patient, eye, decision, grade and referable_probability of the plain image, quality,
gradable, uncertainty: the spread of the probability over the views), ``report.html`` (the
per-patient referral report, `drscreen.commands.referral_report`), ``<stem>_heatmap.png``
panels of the view-averaged heatmap (the photograph at its own resolution, brought to
`MIN_READABLE_SIDE`-`READABLE_SIDE` px, beside the heatmap mapped back onto it, with a colour
scale and the strongest lesion candidates ringed unless the photograph cannot be graded:
`drscreen.heatmaps.overlay.photograph_panel`, `candidates_to_mark`), for a run with a lesion
student (``lesions.keras``) ``<stem>_lesions.png`` panels of its lesion probability (the
exports' ``lesions`` output of the plain image, on a fixed 0-1 scale, its peaks of at least
0.5 ringed: `drscreen.evaluation.lesion_student.probable_lesions`) and, when some images
cannot be used, ``failures.csv`` (image, reason). Bad images (those `load_rgb` refuses, and
crops without a field of view) never stop the others.
"""

import csv
import dataclasses
import os
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
from drscreen.evaluation.lesion_student import probable_lesions
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.evaluation.referral import tta_spread
from drscreen.heatmaps.api import METHODS
from drscreen.heatmaps.overlay import photograph_panel, save_image
from drscreen.heatmaps.tta import VIEW_SETS, tta_compute
from drscreen.models.calibration import Calibration, resolve_calibration
from drscreen.models.lesion_map import lesion_map
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
FAILURES_FILE = "failures.csv"


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
        Output directory (created when missing).
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
    """One image's result."""

    image: str
    grade: float
    referable_probability: float
    quality: float
    gradable: bool
    uncertainty: float
    overlay_path: str
    patient: str
    eye: str
    decision: str
    lesions_path: str = ""
    """The lesion-map panel; "" for a model without a lesion student."""


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """All results of a run: predictions in input order, and the images that failed."""

    predictions: tuple[Prediction, ...]
    failures: tuple[tuple[str, str], ...]


def list_images(images: str) -> list[str]:
    """The image files named by ``images`` (a file, or a directory's image files, sorted)."""
    if os.path.isfile(images):
        return [images]
    if not os.path.isdir(images):
        raise FileNotFoundError(f"{images}: no such image file or directory")
    paths = sorted(
        os.path.join(images, name)
        for name in os.listdir(images)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(images, name))
    )
    if not paths:
        raise FileNotFoundError(f"{images}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return paths


def _overlay_names(path: str, taken: set[str]) -> tuple[str, str]:
    """``<stem>_heatmap.png`` and ``<stem>_lesions.png`` (the file name instead of the stem
    when two images share a stem)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem not in taken else os.path.basename(path)
    taken.add(name)
    return f"{name}_heatmap.png", f"{name}_lesions.png"


def _write_csv(path: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def predict(config: PredictConfig, progress: TextIO | None = None) -> PredictResult:
    """Run ``config``'s model over its images; write the CSV files and overlays.

    A progress line goes to ``progress`` (default: standard error).

    Raises
    ------
    FileNotFoundError
        When the model or the images are missing (bad individual images are recorded in
        the result and ``failures.csv`` instead).
    """
    progress = progress or sys.stderr
    model = load_model(config.model_path)
    size = model_input_size(model)
    given = {} if config.calibration is None else config.calibration.as_overrides("config")
    calibration, _ = resolve_calibration(run_calibration(config.model_path), given)
    paths = list_images(config.images)
    os.makedirs(config.out_dir, exist_ok=True)
    gate, _ = resolve_quality_gate(run_quality_gate(config.model_path))
    rule = referral_report.operating_point(config.model_path, config.referral_sensitivity)
    listed = referral_report.read_patients(config.patients_csv) if config.patients_csv else {}
    views = VIEW_SETS[config.tta]
    student = run_lesion_model(config.model_path, size)

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
    predictions: list[Prediction] = []
    failures: list[tuple[str, str]] = []
    overlay_names: set[str] = set()
    for start in range(0, len(paths), config.batch_size):
        batch_paths, photographs, boxes, images, masks = [], [], [], [], []
        for path in paths[start : start + config.batch_size]:
            try:
                photograph = load_rgb(path, max_pixels=config.max_image_pixels)
                image, mask, box = crop_to_field_of_view_box(photograph, size)
            except ImageError as error:
                failures.append((path, error.reason))
                continue
            if not has_field_of_view(mask):
                failures.append((path, NO_FIELD_OF_VIEW_REASON))
                continue
            batch_paths.append(path)
            photographs.append(photograph)
            boxes.append(tuple(int(value) for value in box.numpy()))
            images.append(image.numpy())
            masks.append(mask.numpy())
        if batch_paths:
            view_grades, heatmaps, quality = heatmap_fn(np.stack(images), np.stack(masks))
            view_probabilities = calibration.probability(view_grades.numpy())
            uncertainty = tta_spread(view_probabilities)
            lesion_maps = (
                None if lesion_fn is None else lesion_fn(np.stack(images), np.stack(masks))
            )
            for index, path in enumerate(batch_paths):
                heatmap_name, lesions_name = _overlay_names(path, overlay_names)
                overlay_path = os.path.join(config.out_dir, heatmap_name)
                heatmap = heatmaps[index].numpy()
                gradable = not bool(gate.ungradable(float(quality[index])))
                # no lesion is pointed at on a photograph that cannot be graded
                marks = candidates_to_mark(heatmap, masks[index] > 0.5) if gradable else None
                panel = photograph_panel(
                    photographs[index], heatmap, boxes[index], masks[index], candidates=marks
                )
                save_image(overlay_path, panel)
                lesions_path = ""
                if lesion_maps is not None:
                    lesions_path = os.path.join(config.out_dir, lesions_name)
                    lesions = lesion_maps[index].numpy()
                    rings = probable_lesions(lesions, masks[index] > 0.5) if gradable else None
                    lesion_panel = photograph_panel(
                        photographs[index], lesions, boxes[index], masks[index],
                        candidates=rings, top=1.0,
                    )  # fmt: skip
                    save_image(lesions_path, lesion_panel)
                grade = float(view_grades[index, 0])
                probability = float(view_probabilities[index, 0])
                patient, eye = listed.get(
                    os.path.basename(path), referral_report.patient_and_eye(path)
                )
                predictions.append(
                    Prediction(
                        image=path,
                        grade=grade,
                        referable_probability=probability,
                        quality=float(quality[index]),
                        gradable=gradable,
                        uncertainty=float(uncertainty[index]),
                        overlay_path=overlay_path,
                        patient=patient,
                        eye=eye,
                        decision=referral_report.eye_decision(gradable, grade, probability, rule),
                        lesions_path=lesions_path,
                    )
                )
        done = min(start + config.batch_size, len(paths))
        progress.write(f"\rdrscreen predict: {done}/{len(paths)} images, {len(failures)} bad")
        progress.flush()
    progress.write("\n")
    _write_csv(
        os.path.join(config.out_dir, PREDICTIONS_FILE),
        (
            "image",
            "patient",
            "eye",
            "decision",
            "grade",
            "referable_probability",
            "quality",
            "gradable",
            "uncertainty",
        ),
        [
            (
                p.image,
                p.patient,
                p.eye,
                p.decision,
                f"{p.grade:.6f}",
                f"{p.referable_probability:.6f}",
                f"{p.quality:.6f}",
                int(p.gradable),
                f"{p.uncertainty:.6f}",
            )
            for p in predictions
        ],
    )
    if predictions:
        eyes = [
            referral_report.EyeResult(
                p.image,
                p.patient,
                p.eye,
                p.decision,
                p.referable_probability,
                p.uncertainty,
                p.quality,
                p.overlay_path,
                p.lesions_path,
            )
            for p in predictions
        ]
        referral_report.write_report(referral_report.patients(eyes), rule, config.out_dir)
    if failures:
        _write_csv(os.path.join(config.out_dir, FAILURES_FILE), ("image", "reason"), failures)
    return PredictResult(tuple(predictions), tuple(failures))
