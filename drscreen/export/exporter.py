"""One export run: a trained model -> ``EXPORT_BASE/<N>/`` in every requested format.

Owns the order of an export and its atomicity. Everything is written into a hidden staging
directory next to the versions and renamed to ``<N>`` at the end, so a server polling
``EXPORT_BASE`` never sees a half-written version. Directories and files get the usual modes
less the umask (0755 and 0644 with the common umask 022), so a serving account other than the
exporter can read them. Layout of a version:

    <N>/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests   (saved_model)
    <N>/tflite/drscreen_{float32,float16,int8_weights,dynamic_int8,int8}.tflite (tflite)
    <N>/tflite/drscreen_<variant>.json: signatures, ranges, pre-processing   (tflite)
    <N>/onnx/drscreen.onnx                                                   (onnx)
    <N>/drscreen_export.json                                                 (always)
    <N>/model_card.json, and a copy beside the .tflite and .onnx files       (always)

The model card (`drscreen.models.model_card`, from the source run directory) is also named in
``drscreen_export.json`` with its warning (e.g. trained on synthetic photographs — not for
clinical use), and stored in the ONNX file's metadata (``model_card``, ``warning``).

TFLite is converted from the SavedModel; with ``tflite`` alone the SavedModel is written to
a temporary directory only. Must not parse flags.
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import uuid

import keras

import drscreen
from drscreen.data.staging import OutOfSpaceError, folder_bytes, is_out_of_space
from drscreen.export import onnx as onnx_export
from drscreen.export import samples, saved_model, tflite
from drscreen.export.edge import edge_description
from drscreen.export.signatures import (
    HEATMAP_OUTPUTS,
    INPUT_NAME,
    SCORE_OUTPUTS,
    SIGNATURES,
    ScreeningFunctions,
    SignatureConfig,
)
from drscreen.models.model_card import MODEL_CARD_FILE, model_card

FORMATS = ("saved_model", "tflite", "onnx")
TFLITE_DIR = "tflite"
ONNX_DIR = "onnx"


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `export` writes.

    Attributes
    ----------
    formats:
        A non-empty subset of `FORMATS`.
    version:
        The version directory to create; ``None`` takes the next free one.
    signature:
        Heatmap method and size, score calibration.
    tflite_variants:
        Which of `drscreen.export.tflite.VARIANTS` to convert.
    onnx_opset:
        ONNX default-domain opset.
    model_name:
        Model name in the warmup requests (TF Serving's ``--model_name``).
    calibration_images:
        Synthetic fundus photographs calibrating the int8 variant.
    calibration_source:
        Where ``signature.calibration`` came from, recorded in the description.
    quality_source:
        Where ``signature.quality_gate`` came from, recorded in the description.
    seed:
        Seed of the synthetic warmup and calibration photographs.
    """

    formats: tuple[str, ...] = FORMATS
    version: int | None = None
    signature: SignatureConfig = SignatureConfig()
    tflite_variants: tuple[str, ...] = tflite.VARIANTS
    onnx_opset: int = onnx_export.DEFAULT_OPSET
    model_name: str = "drscreen"
    calibration_images: int = 32
    seed: int = 0
    calibration_source: str = "default"
    quality_source: str = "default"

    def __post_init__(self):
        if not self.formats or set(self.formats) - set(FORMATS):
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")
        unknown = set(self.tflite_variants) - set(tflite.VARIANTS)
        if unknown:
            raise ValueError(f"unknown TFLite variants {sorted(unknown)}; known: {tflite.VARIANTS}")
        if self.version is not None and self.version < 1:
            raise ValueError(f"version must be a positive integer, got {self.version}")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be positive, got {self.calibration_images}")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went: its version, directory and the description it wrote."""

    version: int
    path: str
    description: dict


def _progress(message: str) -> None:
    print(f"drscreen export: {message}", file=sys.stderr, flush=True)


def _description(functions: ScreeningFunctions, config: ExportConfig, source: str) -> dict:
    signature = functions.config
    return {
        "drscreen_version": drscreen.__version__,
        "source_model": source,
        "model_name": functions.model.name,
        "input": {"name": INPUT_NAME, "size": functions.input_size, "range": [0.0, 255.0]},
        "heatmap": {
            "method": signature.heatmap_method,
            "size": functions.heatmap_size,
            "pooling": "average" if functions.heatmap_size < functions.input_size else "none",
            "field_of_view_masked": True,
        },
        "lesions": functions.lesions_description(),
        "calibration": {
            "function": "sigmoid((grade - midpoint) / scale)",
            "midpoint": signature.calibration.midpoint,
            "scale": signature.calibration.scale,
            "source": config.calibration_source,
        },
        "quality": {
            "meaning": "probability that the photograph is gradable (drscreen.models.quality)",
            "ungradable_when": f"quality <= {signature.quality_gate.threshold:.6g}",
            "threshold": signature.quality_gate.threshold,
            "gate": signature.quality_gate.fitted_on,
            "source": config.quality_source,
        },
        "signatures": {
            name: list(SCORE_OUTPUTS if name == "predict_score" else HEATMAP_OUTPUTS)
            for name in SIGNATURES
        },
        "formats": {},
    }


def _write_tflite(
    staging: str, saved_model_dir: str, functions: ScreeningFunctions, config: ExportConfig
) -> dict:
    directory = os.path.join(staging, TFLITE_DIR)
    os.makedirs(directory)
    calibration = None
    if "int8" in config.tflite_variants:
        photographs = samples.encoded_photographs(config.calibration_images, config.seed + 1)
        calibration, _ = samples.preprocessed_images(photographs, functions.input_size)
    files, converted = {}, {}
    for variant in config.tflite_variants:
        _progress(f"converting TFLite {variant}")
        flatbuffer = tflite.convert(saved_model_dir, variant, calibration, converted.get("float32"))
        converted[variant] = flatbuffer
        name = tflite.file_name(variant)
        with open(os.path.join(directory, name), "wb") as file:
            file.write(flatbuffer)
        quantization = tflite.VARIANT_QUANTIZATION[variant]
        edge = edge_description(
            flatbuffer,
            name,
            variant,
            quantization,
            tflite.VARIANT_HEATMAP_AGREEMENT[variant],
            tflite.VARIANT_QUALITY_AGREEMENT[variant],
            tflite.VARIANT_LESIONS_AGREEMENT[variant],
            functions,
        )
        edge_name = tflite.description_name(variant)
        with open(os.path.join(directory, edge_name), "w", encoding="utf-8") as file:
            json.dump(edge, file, indent=2)
            file.write("\n")
        files[variant] = {
            "file": f"{TFLITE_DIR}/{name}",
            "description": f"{TFLITE_DIR}/{edge_name}",
            "signatures": list(tflite.VARIANT_SIGNATURES[variant]),
            "quantization": quantization,
            "bytes": len(flatbuffer),
        }
    return {"ops": "TFLITE_BUILTINS only", "variants": files}


def _write_model_cards(staging: str, card: dict) -> None:
    """``model_card.json`` in the version directory and beside the TFLite and ONNX files."""
    text = json.dumps(card, indent=2) + "\n"
    for folder in (staging, os.path.join(staging, TFLITE_DIR), os.path.join(staging, ONNX_DIR)):
        if os.path.isdir(folder):
            with open(os.path.join(folder, MODEL_CARD_FILE), "w", encoding="utf-8") as file:
                file.write(text)


def _write_onnx(
    staging: str, functions: ScreeningFunctions, config: ExportConfig, card: dict
) -> dict:
    _progress(f"converting ONNX (opset {config.onnx_opset})")
    converted = onnx_export.convert(functions, config.onnx_opset)
    converted.model.metadata_props.add(key="model_card", value=json.dumps(card))
    converted.model.metadata_props.add(key="warning", value=card["warning"] or "")
    os.makedirs(os.path.join(staging, ONNX_DIR))
    relative = f"{ONNX_DIR}/{onnx_export.FILE_NAME}"
    with open(os.path.join(staging, relative), "wb") as file:
        file.write(converted.model.SerializeToString())
    return {
        "file": relative,
        "opset": converted.opset,
        "signature": "predict_float",
        "inputs": list(converted.inputs),
        "outputs": list(converted.outputs),
    }


def export(
    model: keras.Model,
    export_base: str,
    config: ExportConfig,
    source: str = "",
    lesion_model: keras.Model | None = None,
) -> ExportResult:
    """Export ``model`` to ``export_base/<version>/`` in ``config.formats``.

    Parameters
    ----------
    model:
        A drscreen screening model (see `drscreen.models.runs.load_model`).
    lesion_model:
        The run's lesion student (`drscreen.models.runs.run_lesion_model`), whose map
        becomes the ``lesions`` output; None returns the heatmap there.
    export_base:
        The directory of versions (created if missing); TF Serving's ``--model_base_path``.
    config:
        What to write.
    source:
        Where the model came from (a run directory or a ``.keras`` file), recorded in the
        description; its model card is exported (`drscreen.models.model_card.model_card`).

    Raises
    ------
    FileExistsError
        If ``config.version`` exists already.
    drscreen.data.staging.OutOfSpaceError
        If the disk fills up; nothing is left behind under ``export_base``.
    ValueError
        If the model is not exportable, the heatmap size does not divide its input, or the
        lesion model does not take the model's input.
    RuntimeError
        If a conversion fails; nothing is left behind under ``export_base``.
    """
    functions = ScreeningFunctions(model, config.signature, lesion_model)
    version = saved_model.resolve_version(export_base, config.version)
    os.makedirs(export_base, exist_ok=True)
    # os.mkdir honours the umask, as the files written inside do; mkdtemp's 0700 would keep a
    # serving account other than the exporter out of the version directory.
    staging = os.path.join(export_base, f".staging-{version}-{uuid.uuid4().hex}")
    os.mkdir(staging)
    try:
        description = _description(functions, config, source)
        with tempfile.TemporaryDirectory(prefix="drscreen-export-") as scratch:
            keep_saved_model = "saved_model" in config.formats
            saved_model_dir = staging if keep_saved_model else os.path.join(scratch, "model")
            _progress(f"writing SavedModel (version {version})")
            saved_model.write_saved_model(functions, saved_model_dir)
            if keep_saved_model:
                photographs = samples.encoded_photographs(1, config.seed)
                images, _ = samples.preprocessed_images(photographs, functions.input_size)
                requests = saved_model.warmup_requests(config.model_name, photographs, images)
                saved_model.write_warmup_requests(staging, requests)
                description["formats"]["saved_model"] = {
                    "warmup_requests": f"{saved_model.WARMUP_DIR}/{saved_model.WARMUP_FILE}",
                    "method_name": "tensorflow/serving/predict",
                }
            if "tflite" in config.formats:
                description["formats"]["tflite"] = _write_tflite(
                    staging, saved_model_dir, functions, config
                )
        card = model_card(source)
        if "onnx" in config.formats:
            description["formats"]["onnx"] = _write_onnx(staging, functions, config, card)
        _write_model_cards(staging, card)
        description["model_card"] = {"file": MODEL_CARD_FILE, "warning": card["warning"]}
        saved_model.write_description(staging, description)
        final = os.path.join(export_base, str(version))
        if os.path.exists(final):
            raise FileExistsError(f"{final} appeared during the export; not overwriting it")
        os.rename(staging, final)
    except BaseException as error:
        full = is_out_of_space(error, export_base)
        written = folder_bytes(staging) if full else 0
        shutil.rmtree(staging, ignore_errors=True)
        if full:
            free = shutil.disk_usage(export_base).free
            raise OutOfSpaceError(
                os.path.join(export_base, str(version)), written, None, free
            ) from error
        raise
    _progress(f"exported version {version} to {final}")
    return ExportResult(version=version, path=final, description=description)
