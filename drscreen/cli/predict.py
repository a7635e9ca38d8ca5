"""`drscreen predict`: grade, referable-DR probability and heatmap overlay for image files.

    drscreen predict --model=RUN_DIR_OR_MODEL.keras --images=FILE_OR_DIR --out=DIR \
        [--method=sensitivity] [--batch_size=8] [--max_image_pixels=40000000]

Writes DIR/predictions.csv (a row for every photograph: its patient, eye and decision, and the
reason when it cannot be graded), DIR/report.html (the per-patient referral report, headed by
the model card) and DIR/<image>_heatmap.png. DIR is replaced whole by each run (a folder
holding anything but an earlier predict output is refused).
"""

import sys

from absl import app, flags

from drscreen.cli.paths import require_output_folder
from drscreen.commands.predict import PredictConfig, predict
from drscreen.data.image_io import DEFAULT_MAX_PIXELS
from drscreen.heatmaps.api import METHODS
from drscreen.heatmaps.tta import VIEW_SETS

_MODEL = flags.DEFINE_string("model", None, "A .keras model, or a run directory with best.keras.")
_IMAGES = flags.DEFINE_string("images", None, "An image file or a directory of images.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
require_output_folder(_OUT)
_METHOD = flags.DEFINE_enum("method", "sensitivity", list(METHODS), "Heatmap method.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per network batch.")
_TTA = flags.DEFINE_enum(
    "tta", "flips", list(VIEW_SETS), "Test-time views behind the heatmap and the uncertainty."
)
_REFERRAL_SENSITIVITY = flags.DEFINE_float(
    "referral_sensitivity",
    0.90,
    "Refer an eye at the run's validation threshold of this sensitivity (metrics.json).",
)
_PATIENTS_CSV = flags.DEFINE_string(
    "patients_csv", "", "CSV of image, patient, eye (default: Kaggle-style ID_left/ID_right names)."
)
_MAX_IMAGE_PIXELS = flags.DEFINE_integer(
    "max_image_pixels",
    DEFAULT_MAX_PIXELS,
    "Refuse photographs with more pixels than this (read from the header, before decoding).",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for flag in (_MODEL, _IMAGES, _OUT):
        if not flag.value:
            raise app.UsageError(f"--{flag.name} is required")
    try:
        config = PredictConfig(
            model_path=_MODEL.value,
            images=_IMAGES.value,
            out_dir=_OUT.value,
            method=_METHOD.value,
            batch_size=_BATCH_SIZE.value,
            max_image_pixels=_MAX_IMAGE_PIXELS.value,
            tta=_TTA.value,
            referral_sensitivity=_REFERRAL_SENSITIVITY.value,
            patients_csv=_PATIENTS_CSV.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        result = predict(config)
    except (OSError, ValueError) as error:  # a missing model, a folder in the way, a full disk
        sys.exit(f"drscreen predict: {error}")
    for prediction in result.cannot_grade:
        print(f"cannot grade {prediction.image}: {prediction.reason}", file=sys.stderr)
    print(
        f"wrote {len(result.predictions)} predictions ({len(result.cannot_grade)} cannot be "
        f"graded) to {config.out_dir}"
    )
