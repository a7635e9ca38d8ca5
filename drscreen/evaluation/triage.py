"""A screening programme's triage, evaluated: the gradability gate, then referral by uncertainty.

`triage_stream` passes a source once more through the model (besides `runner.run`): per
image its `drscreen.data.gradability` features and gate quality, and the grade of each
test-time view (`drscreen.heatmaps.tta`). `triage_sections` turns the streams of the
evaluated and the validation images into two sections of ``metrics.json``:

- ``gradability``: the ungradable-detection AUC (with a bootstrap CI) where the data says
  which photographs are gradable (`FundusRecord.gradable`), the threshold (re-chosen on the
  validation photographs when they are labelled, else the gate's own), what it catches, the
  share of photographs it flags, and the referable-DR figures on the gradable photographs
  (thresholds from the gradable validation photographs) and on those the gate passes;
- ``referral``: on the gradable photographs, the AUC of the view-averaged score beside the
  plain one, and the referral curves (`drscreen.evaluation.referral`) by each uncertainty,
  at the validation operating point of 0.90 sensitivity.

Thresholds always come from the validation stream of the same model.
"""

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.gradability import gradability_features
from drscreen.data.lesions import REFERABLE_GRADE
from drscreen.data.records import FundusRecord
from drscreen.data.sources import PreparedSplit, Source
from drscreen.evaluation import referral, screening, sections
from drscreen.evaluation.runner import RunnerConfig, batches
from drscreen.heatmaps.tta import check_views, tta_grades
from drscreen.models.calibration import Calibration
from drscreen.models.quality import QualityGate, threshold_for_catching

REFERRAL_SENSITIVITY = 0.90


@dataclasses.dataclass(frozen=True)
class TriageArrays:
    """Per image of one stream, in source order.

    Attributes
    ----------
    image_ids, patient_ids, grades:
        As `streaming.ScreeningAccumulator.arrays()` (grade -1: none).
    gradable:
        1 gradable, 0 ungradable, -1 not labelled.
    features:
        (N, F) gradability features.
    quality:
        (N,) the gate's probability that the photograph is gradable.
    view_grades:
        (N, V) the model's grade of each test-time view (view 0: the plain image).
    """

    image_ids: np.ndarray
    patient_ids: np.ndarray
    grades: np.ndarray
    gradable: np.ndarray
    features: np.ndarray
    quality: np.ndarray
    view_grades: np.ndarray

    def select(self, keep: np.ndarray) -> "TriageArrays":
        return TriageArrays(
            **{f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self)}
        )

    def screening_arrays(self) -> dict[str, np.ndarray]:
        """The arrays `sections` takes, the predictions being the plain image's grades."""
        return {
            "grades": self.grades,
            "predictions": self.view_grades[:, 0],
            "image_ids": self.image_ids,
            "patient_ids": self.patient_ids,
        }


def gradability_labels(source: Source) -> dict[str, bool]:
    """Image id -> gradable of the records that say (none for a ``prepare`` folder)."""
    if isinstance(source, PreparedSplit):
        return {}
    records: Sequence[FundusRecord] = source
    return {r.image_id: r.gradable for r in records if r.gradable is not None}


def triage_stream(
    source: Source,
    model: keras.Model | None,
    gate: QualityGate | None,
    config: RunnerConfig,
    views: Sequence[str] = ("identity",),
) -> TriageArrays:
    """Stream ``source`` through the gate and the model's test-time views once.

    ``views`` must start with ``"identity"`` (the plain image the operating points use).
    Without a model ``view_grades`` is (N, 0); without a gate ``quality`` is NaN (for
    fitting a gate on the features).
    """
    views = check_views(views)
    if views[0] != "identity":
        raise ValueError(f"the first test-time view must be 'identity', got {views}")
    labels = gradability_labels(source)

    @tf.function(reduce_retracing=True)
    def measure(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if model is None:
            return gradability_features(images, masks), tf.zeros([tf.shape(images)[0], 0])
        return gradability_features(images, masks), tta_grades(model, images, views)

    parts: dict[str, list] = {name: [] for name in ("ids", "patients", "grades", "f", "v")}
    quiet = dataclasses.replace(config, progress=False)
    for batch in batches(source, quiet, with_masks=False):
        features, view_grades = measure(tf.constant(batch["image"]), tf.constant(batch["mask"]))
        parts["ids"].append(batch["image_id"])
        parts["patients"].append(batch["patient_id"])
        parts["grades"].append(batch["grade"])
        parts["f"].append(features.numpy())
        parts["v"].append(view_grades.numpy())
    image_ids = np.concatenate(parts["ids"]).astype(str)
    features = np.concatenate(parts["f"]).astype(np.float64)
    return TriageArrays(
        image_ids=image_ids,
        patient_ids=np.concatenate(parts["patients"]).astype(str),
        grades=np.concatenate(parts["grades"]).astype(np.int64),
        gradable=np.array([int(labels.get(i, -1)) for i in image_ids], np.int64),
        features=features,
        quality=gate.quality(features) if gate else np.full(image_ids.size, np.nan),
        view_grades=np.concatenate(parts["v"]).astype(np.float64),
    )


def _has_both(labels: np.ndarray) -> bool:
    return bool(labels.any() and not labels.all())


def gradability_section(
    evaluated: TriageArrays, validation: TriageArrays | None, gate: QualityGate, n_bootstrap: int
) -> dict:
    """The ``gradability`` section (see the module docstring)."""
    threshold, chosen_on = gate.threshold, "the gate's own (no labelled validation photographs)"
    if validation is not None and _has_both(validation.gradable[validation.gradable >= 0]):
        labelled = validation.select(validation.gradable >= 0)
        threshold = threshold_for_catching(labelled.quality, labelled.gradable == 1)
        chosen_on = (
            f"the {labelled.image_ids.size} labelled validation photographs "
            "(catching 95 % of their ungradable ones)"
        )
    flagged = evaluated.quality <= threshold
    section: dict = {
        "threshold": threshold,
        "threshold_chosen_on": chosen_on,
        "gate": gate.fitted_on,
        "images": int(flagged.size),
        "flagged_fraction": float(flagged.mean()),
    }
    labelled = evaluated.gradable >= 0
    ungradable = evaluated.gradable[labelled] == 0
    if not _has_both(ungradable):
        section["detection"] = {
            "skipped": "the evaluated photographs are not labelled gradable and ungradable"
        }
    else:
        scores = 1.0 - evaluated.quality[labelled]
        low, high = screening.auc_confidence_interval(
            ungradable, scores, evaluated.patient_ids[labelled], n_bootstrap
        )
        point = screening.operating_point(ungradable, flagged[labelled].astype(float), 1.0)
        section["detection"] = {
            "auc": screening.roc_auc(ungradable, scores),
            "auc_ci": [low, high],
            "ungradable": int(ungradable.sum()),
            "gradable": int((~ungradable).sum()),
            "sensitivity": point.sensitivity,
            "specificity": point.specificity,
        }
    gradable_test = evaluated.select(evaluated.gradable != 0)
    gradable_validation = validation.select(validation.gradable != 0) if validation else None
    section["referable_dr_on_gradable"] = sections.screening_sections(
        gradable_test.screening_arrays(),
        gradable_validation.screening_arrays() if gradable_validation else None,
        n_bootstrap,
    )["screening"]
    passed = evaluated.select(~flagged)
    section["referable_dr_on_passed"] = _auc_or_reason(passed)
    return section


def _auc_or_reason(arrays: TriageArrays) -> dict:
    graded = arrays.grades >= 0
    labels = arrays.grades[graded] >= REFERABLE_GRADE
    if not _has_both(labels):
        return {
            "skipped": "the images hold one referable-DR class only",
            "images": int(labels.size),
        }
    scores = arrays.view_grades[graded, 0]
    return {"auc": screening.roc_auc(labels, scores), "images": int(labels.size)}


def referral_section(
    evaluated: TriageArrays,
    validation: TriageArrays | None,
    calibration: Calibration,
    views: Sequence[str],
) -> dict:
    """The ``referral`` section (see the module docstring)."""
    test = evaluated.select((evaluated.gradable != 0) & (evaluated.grades >= 0))
    labels = test.grades >= REFERABLE_GRADE
    section: dict = {"views": list(views), "images": int(labels.size)}
    if validation is None:
        return {**section, "skipped": "no validation images to choose the operating point on"}
    tuning = validation.select((validation.gradable != 0) & (validation.grades >= 0))
    tuning_labels = tuning.grades >= REFERABLE_GRADE
    if not (_has_both(labels) and _has_both(tuning_labels)):
        return {**section, "skipped": "the gradable images hold one referable-DR class only"}
    threshold = screening.threshold_for_sensitivity(
        tuning_labels, tuning.view_grades[:, 0], REFERRAL_SENSITIVITY
    )
    probabilities = np.asarray(calibration.probability(test.view_grades))
    section.update(
        {
            "operating_threshold": threshold,
            "operating_point": f"validation sensitivity {REFERRAL_SENSITIVITY:.2f}",
            "auc_plain": screening.roc_auc(labels, test.view_grades[:, 0]),
            "auc_view_mean": screening.roc_auc(labels, test.view_grades.mean(axis=1)),
            "curves": {
                name: referral.referral_curve(labels, test.view_grades[:, 0], values, threshold)
                for name, values in referral.uncertainties(probabilities).items()
            },
        }
    )
    return section


def triage_sections(
    evaluated: TriageArrays,
    validation: TriageArrays | None,
    gate: QualityGate,
    calibration: Calibration,
    views: Sequence[str],
    n_bootstrap: int,
) -> dict:
    """``{"gradability": ..., "referral": ...}`` of the two streams."""
    return {
        "gradability": gradability_section(evaluated, validation, gate, n_bootstrap),
        "referral": referral_section(evaluated, validation, calibration, views),
    }
