"""Final evaluation of a run's best model on the validation and test splits.

Scores every image (and its sensitivity heatmap when lesion masks exist, i.e. the synthetic
benchmark), then computes the screening metrics with `drscreen.evaluation.screening`
(thresholds chosen on validation, applied to test) and the heatmap's relevance mass inside the
lesion masks with `drscreen.evaluation.heatmap_quality.relevance_mass`. The referable-DR
probability is calibrated on the validation predictions
(`drscreen.models.calibration.fit_referable_calibration`), with the expected calibration
error of the default and the fitted calibration on both splits. Images with lesion masks are
read through `drscreen.evaluation.runner.batches`, which crops each mask with its own
photograph's field-of-view box, so masks stay aligned with the pre-processed image.
"""

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.lesions import REFERABLE_GRADE
from drscreen.evaluation import runner
from drscreen.evaluation.calibration import expected_calibration_error
from drscreen.evaluation.heatmap_quality import relevance_mass
from drscreen.evaluation.screening import binary_labels, evaluate_screening
from drscreen.heatmaps import compute
from drscreen.models.calibration import Calibration, fit_referable_calibration
from drscreen.training.data import Source, evaluation_batches


def predict_split(
    model: keras.Model, source: Source, split: str, batch_size: int, lesion_masks: bool
) -> dict[str, np.ndarray]:
    """Grades, predictions and ids of one split.

    With `lesion_masks` (`source` is records carrying masks), the batches come from the
    evaluation runner, which crops each lesion mask with its photograph's box, and
    ``lesion_mass`` holds each image's sensitivity-heatmap mass inside the union of its lesion
    masks (NaN without lesions); heatmaps are reduced batch by batch, never kept.
    """
    size = int(model.input_shape[1])
    out: dict[str, list] = {"grades": [], "predictions": [], "image_ids": [], "patient_ids": []}
    if lesion_masks:
        out["lesion_mass"] = []
        batches = runner.batches(
            source, runner.RunnerConfig(image_size=size, batch_size=batch_size), with_masks=True
        )
    else:
        batches = evaluation_batches(source, split, size, batch_size)
    score_fn = tf.function(lambda images: model(images, training=False)[:, 0])
    for batch in batches:
        if lesion_masks:
            scores, maps = compute(model, batch["image"], fov_masks=batch["mask"])
            pairs = zip(np.asarray(maps), batch["lesion_masks"], strict=True)
            out["lesion_mass"].append([_lesion_mass(h, m) for h, m in pairs])
        else:
            scores = score_fn(batch["image"])
        out["predictions"].append(np.asarray(scores, np.float64).reshape(-1))
        out["grades"].append(np.asarray(batch["grade"]))
        out["image_ids"].append(np.asarray(batch["image_id"]).astype(str))
        out["patient_ids"].append(np.asarray(batch["patient_id"]).astype(str))
    return {key: np.concatenate(values) for key, values in out.items()}


def _lesion_mass(heatmap: np.ndarray, masks: dict[str, np.ndarray]) -> float:
    union = np.any([mask > 0 for mask in masks.values()], axis=0) if masks else None
    if union is None or not union.any():
        return float("nan")
    return relevance_mass(heatmap, union)


def heatmap_lesion_mass(lesion_mass: np.ndarray) -> dict:
    """Mean fraction of heatmap mass inside the lesion masks, over images that have lesions."""
    masses = lesion_mass[np.isfinite(lesion_mass)]
    return {
        "relevance_mass_in_lesions": float(np.mean(masses)) if masses.size else float("nan"),
        "images_with_lesions": int(masses.size),
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
    val = predict_split(model, validation, "validation", batch_size, lesion_masks=False)
    tst = predict_split(model, test, "test", batch_size, lesion_masks=with_masks)
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
        metrics["test"]["heatmap"] = heatmap_lesion_mass(tst["lesion_mass"])
    return metrics
