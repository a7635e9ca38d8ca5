"""`drscreen evaluate`: run a model over a dataset and write metrics.json and the report.

Example: ``drscreen evaluate --model=/tmp/qs --data=/tmp/qs/data --dataset=synthetic
--out=/tmp/qs/eval --methods=sensitivity,gradcam --heatmap_aware_model=/tmp/qs_aware``

``--data`` is a dataset folder or a ``drscreen prepare`` output folder. On the dataset the run
was trained on, the images evaluated are the ``--split`` part of the split its training held
out (its ``splits.json``); any other dataset is evaluated whole. The thresholds are chosen on
the split's validation part (the run's own, for another dataset), or on ``--validation_data``.
See `drscreen.commands.evaluate.evaluate`.
"""

import shlex
import sys

from absl import app, flags

from drscreen.cli.paths import require_output_folder
from drscreen.commands.evaluate import (
    LESION_METRICS,
    SPLIT_CHOICES,
    EvaluationConfig,
    evaluate,
)
from drscreen.data.readers import DATASET_NAMES
from drscreen.heatmaps import METHODS
from drscreen.heatmaps.tta import VIEW_SETS

_MODEL = flags.DEFINE_string("model", None, "Training run directory (best.keras) or .keras file.")
_DATA = flags.DEFINE_string("data", None, "Dataset root folder or `drscreen prepare` folder.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", f"Reader: one of {DATASET_NAMES}.")
_OUT = flags.DEFINE_string("out", None, "Output folder for metrics.json, report.md, figures.")
require_output_folder(_OUT)
_VALIDATION_DATA = flags.DEFINE_string(
    "validation_data", "", "Validation set folder (same reader); default: validation split."
)
_SPLIT = flags.DEFINE_enum("split", "test", SPLIT_CHOICES, "Part of --data evaluated.")
_METHODS = flags.DEFINE_list(
    "methods", ["sensitivity"], f"Heatmap methods, first = main: {', '.join(METHODS)}."
)
_HEATMAP_AWARE_MODEL = flags.DEFINE_string(
    "heatmap_aware_model", "", "Run directory or .keras file of a heatmap-aware-trained model."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images per batch.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 0, "Input size in pixels; 0: the model's.")
_GALLERY = flags.DEFINE_integer("gallery", 8, "Cases in the heatmap gallery; 0 for none.")
_LESION_METRICS = flags.DEFINE_enum(
    "lesion_metrics", "auto", LESION_METRICS, "auto: when masks exist; required: error without."
)
_PERTURBATION_IMAGES = flags.DEFINE_integer(
    "perturbation_images", 32, "Images per method with deletion/insertion curves."
)
_N_BOOTSTRAP = flags.DEFINE_integer("n_bootstrap", 1000, "Bootstrap replicates of AUC CIs.")
_TTA = flags.DEFINE_enum(
    "tta", "flips", list(VIEW_SETS), "Test-time views behind the referral curve's uncertainty."
)
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", None, "Validation share of a split made here (no splits.json); default 0.15."
)
_TEST_FRACTION = flags.DEFINE_float(
    "test_fraction", None, "Test share of a split made here (no splits.json); default 0.15."
)
_SPLIT_SEED = flags.DEFINE_integer(
    "split_seed", None, "Seed of a split made here (no splits.json); default 0."
)
_ALL_FLAGS = (
    _MODEL,
    _DATA,
    _DATASET,
    _OUT,
    _VALIDATION_DATA,
    _SPLIT,
    _METHODS,
    _HEATMAP_AWARE_MODEL,
    _BATCH_SIZE,
    _IMAGE_SIZE,
    _GALLERY,
    _LESION_METRICS,
    _PERTURBATION_IMAGES,
    _N_BOOTSTRAP,
    _TTA,
    _VAL_FRACTION,
    _TEST_FRACTION,
    _SPLIT_SEED,
)


def _command_line() -> str:
    """``drscreen evaluate`` with the flags given on the command line."""
    given = [holder.serialize() for holder in _ALL_FLAGS if holder.present]
    return shlex.join(["drscreen", "evaluate", *given])


def _config() -> EvaluationConfig:
    """The config of the parsed flags; its own validation names a bad value."""
    try:
        return EvaluationConfig(
            model=_MODEL.value or "",
            data=_DATA.value or "",
            out=_OUT.value or "",
            dataset=_DATASET.value,
            validation_data=_VALIDATION_DATA.value,
            split=_SPLIT.value,
            val_fraction=_VAL_FRACTION.value,
            test_fraction=_TEST_FRACTION.value,
            split_seed=_SPLIT_SEED.value,
            methods=tuple(_METHODS.value),
            heatmap_aware_model=_HEATMAP_AWARE_MODEL.value,
            batch_size=_BATCH_SIZE.value,
            image_size=_IMAGE_SIZE.value,
            gallery=_GALLERY.value,
            lesion_metrics=_LESION_METRICS.value,
            perturbation_images=_PERTURBATION_IMAGES.value,
            n_bootstrap=_N_BOOTSTRAP.value,
            tta=_TTA.value,
            command=_command_line(),
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = _config()
    try:
        metrics = evaluate(config)
    except (ValueError, OSError) as error:  # bad data, a folder in the way, a full disk
        sys.exit(f"drscreen evaluate: {error}")
    summary = metrics["screening"].get("referable_dr", {}).get("auc")
    auc = f"referable-DR AUC {summary:.3f}, " if summary is not None else ""
    images = metrics["evaluated"]["images"]
    print(f"evaluated {images} images: {auc}report in {config.out}/report.md")
