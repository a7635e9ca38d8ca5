"""Export: SavedModel for TF Serving, TFLite and ONNX, all returning score and heatmap.

Owns conversion of a trained model into deployable artefacts. Must not serve requests.

`export(model, export_base, ExportConfig(...))` writes ``export_base/<N>/`` (see
`drscreen.export.exporter`); models come from `drscreen.models.runs.load_model`. The exported
functions and their signature names are in `drscreen.export.signatures`.
"""

from drscreen.export.exporter import FORMATS, ExportConfig, ExportResult, export
from drscreen.export.saved_model import read_description, resolve_version
from drscreen.export.signatures import (
    PREDICT_FLOAT,
    PREDICT_SCORE,
    SERVING_DEFAULT,
    SIGNATURES,
    ScreeningFunctions,
    SignatureConfig,
)

__all__ = [
    "FORMATS",
    "PREDICT_FLOAT",
    "PREDICT_SCORE",
    "SERVING_DEFAULT",
    "SIGNATURES",
    "ExportConfig",
    "ExportResult",
    "ScreeningFunctions",
    "SignatureConfig",
    "export",
    "read_description",
    "resolve_version",
]
