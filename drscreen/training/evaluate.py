"""Final evaluation of a run's best model on the validation and test splits.

Scores every image (and its sensitivity heatmap when lesion masks exist, i.e. the synthetic
benchmark), then computes the screening metrics with `drscreen.evaluation.screening`
(thresholds chosen on validation, applied to test) and the heatmap's relevance mass inside the
lesion masks with `drscreen.evaluation.heatmap_quality.relevance_mass`. The referable-DR
probability is calibrated on the validation predictions
(`drscreen.models.calibration.fit_referable_calibration`), with the expected calibration
error of the default and the fitted calibration on both splits. Lesion masks are cut
with the same field-of-view box as their photograph (`drscreen.data.fundus`), so they stay
aligned with the pre-processed image.
"""

from collections.abc import Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from drscreen.data.fundus import crop_square, field_of_view_box, field_of_view_mask
from drscreen.data.image_io import load_mask, load_rgb
from drscreen.data.lesions import REFERABLE_GRADE
from drscreen.data.records import FundusRecord
from drscreen.evaluation.calibration import expected_calibration_error
from drscreen.evaluation.heatmap_quality import relevance_mass
from drscreen.evaluation.screening import binary_labels, evaluate_screening
from drscreen.heatmaps import compute
from drscreen.models.calibration import Calibration, fit_referable_calibration
from drscreen.training.data import Source, evaluation_batches


def lesion_mask_at_size(record: FundusRecord, size: int) -> np.ndarray:
    """Union of `record`'s lesion masks, cropped and resized like its photograph (bool)."""
    image = load_rgb(record.image_path)
    union = np.zeros(image.shape[:2], np.uint8)
    for path in record.lesion_masks.values():
        mask = load_mask(path)
        if mask.shape != union.shape:
            mask = cv2.resize(mask.astype(np.uint8), union.shape[::-1], cv2.INTER_NEAREST) > 0
        union |= mask.astype(np.uint8)
    box = field_of_view_box(field_of_view_mask(image))
    cropped = crop_square(union[..., np.newaxis] * 255.0, box, size)
    return np.asarray(cropped[..., 0]) > 127.5


def predict_split(
    model: keras.Model, source: Source, split: str, batch_size: int, heatmaps: bool
) -> dict[str, np.ndarray]:
    """Grades, predictions, ids (and heatmaps (N, S, S) when asked) of one split."""
    size = int(model.input_shape[1])
    out: dict[str, list] = {"grades": [], "predictions": [], "image_ids": [], "patient_ids": []}
    if heatmaps:
        out["heatmaps"] = []
    score_fn = tf.function(lambda images: model(images, training=False)[:, 0])
    for batch in evaluation_batches(source, split, size, batch_size):
        if heatmaps:
            scores, maps = compute(model, batch["image"], fov_masks=batch["mask"])
            out["heatmaps"].append(np.asarray(maps))
        else:
            scores = score_fn(batch["image"])
        out["predictions"].append(np.asarray(scores, np.float64).reshape(-1))
        out["grades"].append(np.asarray(batch["grade"]))
        out["image_ids"].append(np.asarray(batch["image_id"]).astype(str))
        out["patient_ids"].append(np.asarray(batch["patient_id"]).astype(str))
    return {key: np.concatenate(values) for key, values in out.items()}


def heatmap_lesion_mass(
    heatmaps: np.ndarray, image_ids: np.ndarray, records: Sequence[FundusRecord]
) -> dict:
    """Mean fraction of heatmap mass inside the lesion masks, over images that have lesions."""
    by_id = {record.image_id: record for record in records}
    size = heatmaps.shape[1]
    masses = []
    for heatmap, image_id in zip(heatmaps, image_ids, strict=True):
        record = by_id[image_id]
        if not record.lesion_masks:
            continue
        mask = lesion_mask_at_size(record, size)
        if mask.any():
            mass = relevance_mass(heatmap, mask)
            if np.isfinite(mass):
                masses.append(mass)
    return {
        "relevance_mass_in_lesions": float(np.mean(masses)) if masses else float("nan"),
        "images_with_lesions": len(masses),
    }


def calibration_metrics(validation: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict:
    """Referable-DR calibration fitted on `validation` and its ECE (`predict_split` outputs).

    Returns
    -------
    ``{"fitted": Calibration.to_dict() or None, "expected_calibration_error": {split:
    {"default": ..., "fitted": ...}}}``; without a fit (one class, or grades not increasing
    with referability) ``fitted`` is None, ``reason`` says why and only ``default`` is given.
    """
    default = Calibration()
    try:
        fitted = fit_referable_calibration(
            validation["predictions"], binary_labels(validation["grades"], REFERABLE_GRADE)
        )
    except ValueError as error:
        fitted, reason = None, str(error)
    errors = {}
    for name, split in (("validation", validation), ("test", test)):
        labels = binary_labels(split["grades"], REFERABLE_GRADE)
        errors[name] = {
            key: expected_calibration_error(labels, calibration.probability(split["predictions"]))
            for key, calibration in (("default", default), ("fitted", fitted))
            if calibration is not None
        }
    section = {"fitted": fitted.to_dict() if fitted else None, "expected_calibration_error": errors}
    if fitted is None:
        section["reason"] = reason
    return section


def final_metrics(model: keras.Model, validation: Source, test: Source, batch_size: int) -> dict:
    """Screening metrics (validation and test), the referable-DR calibration fitted on
    validation (`calibration_metrics`) and, with lesion masks, heatmap mass (test)."""
    with_masks = not isinstance(test, str) and any(r.lesion_masks for r in test)
    val = predict_split(model, validation, "validation", batch_size, heatmaps=False)
    tst = predict_split(model, test, "test", batch_size, heatmaps=with_masks)
    screening = evaluate_screening(
        tst["grades"], tst["predictions"], val["grades"], val["predictions"], tst["patient_ids"]
    )
    validation_only = evaluate_screening(
        val["grades"], val["predictions"], val["grades"], val["predictions"]
    )
    metrics = {
        "validation": {
            "referable_auc": validation_only["referable_dr"]["auc"],
            "any_dr_auc": validation_only["any_dr"]["auc"],
            "mse": float(np.mean((val["predictions"] - val["grades"]) ** 2)),
            "images": int(len(val["grades"])),
        },
        "test": {
            "referable_auc": screening["referable_dr"]["auc"],
            "referable_auc_ci": screening["referable_dr"]["auc_ci"],
            "any_dr_auc": screening["any_dr"]["auc"],
            "mse": float(np.mean((tst["predictions"] - tst["grades"]) ** 2)),
            "images": int(len(tst["grades"])),
            "screening": screening,
        },
        "calibration": calibration_metrics(val, tst),
    }
    if with_masks:
        metrics["test"]["heatmap"] = heatmap_lesion_mass(tst["heatmaps"], tst["image_ids"], test)
    return metrics
