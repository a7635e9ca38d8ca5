"""`drscreen export`: a trained model -> SavedModel (TF Serving), TFLite and ONNX.

    drscreen export --model=runs/small --out=runs/export [--version=N]
        [--format=saved_model|tflite|onnx|all] [--heatmap_size=PX]

Writes ``OUT/<N>/`` (the next free version unless ``--version`` names a new one); see
`drscreen.export.exporter` for the layout. The referable-score calibration is the run
directory's ``calibration.json`` when it has one, else the default; explicit
``--calibration_midpoint``/``--calibration_scale`` override either. The gradability gate
behind the ``quality`` output is the run's ``quality.json``, else drscreen's default gate.
The ``lesions`` output is the run's lesion student (``lesions.keras``) when it has one, else
the heatmap.
"""

import sys

from absl import app, flags

from drscreen.cli.paths import require_output_folder
from drscreen.export import FORMATS, ExportConfig, SignatureConfig, export
from drscreen.export.onnx import DEFAULT_OPSET
from drscreen.export.tflite import VARIANTS
from drscreen.heatmaps import METHODS
from drscreen.models import DEFAULT_MIDPOINT, DEFAULT_SCALE
from drscreen.models.calibration import Calibration, resolve_calibration
from drscreen.models.quality import resolve_quality_gate
from drscreen.models.runs import (
    load_model,
    model_input_size,
    run_calibration,
    run_lesion_model,
    run_quality_gate,
)

_MODEL = flags.DEFINE_string(
    "model", None, "A training run directory (its best.keras) or a .keras model file."
)
_OUT = flags.DEFINE_string("out", None, "Export base directory (TF Serving's model_base_path).")
require_output_folder(_OUT)
_VERSION = flags.DEFINE_integer("version", 0, "Version to create (0: the next free version).")
_FORMAT = flags.DEFINE_enum("format", "all", [*FORMATS, "all"], "What to export.")
_HEATMAP_SIZE = flags.DEFINE_integer(
    "heatmap_size", 0, "Side of the returned heatmaps; must divide the input size (0: input)."
)
_HEATMAP_METHOD = flags.DEFINE_enum(
    "heatmap_method", "sensitivity", list(METHODS), "Heatmap method of the exported signatures."
)
_MIDPOINT = flags.DEFINE_float(
    "calibration_midpoint",
    DEFAULT_MIDPOINT,
    "Grade at which the referable score is 0.5 (default: the run's calibration.json, if any).",
)
_SCALE = flags.DEFINE_float(
    "calibration_scale",
    DEFAULT_SCALE,
    "Logistic scale of the referable score, in grades (default: the run's calibration.json).",
)
_TFLITE_VARIANTS = flags.DEFINE_multi_enum(
    "tflite_variant", list(VARIANTS), list(VARIANTS), "TFLite variants to convert."
)
_ONNX_OPSET = flags.DEFINE_integer("onnx_opset", DEFAULT_OPSET, "ONNX opset.")
_MODEL_NAME = flags.DEFINE_string(
    "model_name", "drscreen", "Model name in the TF Serving warmup requests."
)


def _calibration(run_or_model: str) -> tuple[Calibration, str]:
    """The calibration and its source: explicit flags, else the run's file, else default."""
    overrides = {
        name: (flag.value, f"--{flag.name}")
        for name, flag in (("midpoint", _MIDPOINT), ("scale", _SCALE))
        if flag.present
    }
    return resolve_calibration(run_calibration(run_or_model), overrides)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _MODEL.value:
        raise app.UsageError("--model is required (a run directory or a .keras file)")
    if not _OUT.value:
        raise app.UsageError("--out is required (the export base directory)")
    if _VERSION.value < 0:
        raise app.UsageError(f"--version={_VERSION.value} must be >= 0 (0: next free version)")
    formats = FORMATS if _FORMAT.value == "all" else (_FORMAT.value,)
    try:
        calibration, calibration_source = _calibration(_MODEL.value)
        gate, gate_source = resolve_quality_gate(run_quality_gate(_MODEL.value))
        config = ExportConfig(
            formats=formats,
            version=_VERSION.value or None,
            signature=SignatureConfig(
                heatmap_method=_HEATMAP_METHOD.value,
                heatmap_size=_HEATMAP_SIZE.value,
                calibration=calibration,
                quality_gate=gate,
            ),
            tflite_variants=tuple(_TFLITE_VARIANTS.value),
            onnx_opset=_ONNX_OPSET.value,
            model_name=_MODEL_NAME.value,
            calibration_source=calibration_source,
            quality_source=gate_source,
        )
        model = load_model(_MODEL.value)
        student = run_lesion_model(_MODEL.value, model_input_size(model))
        export(model, _OUT.value, config, source=_MODEL.value, lesion_model=student)
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from error
    except FileExistsError as error:
        raise app.UsageError(f"--version: {error}") from error
    except OSError as error:  # a full disk, an unwritable folder
        sys.exit(f"drscreen export: {error}")
