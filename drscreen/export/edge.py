"""Edge packaging: the description a device maker needs beside each ``.tflite`` file.

Owns ``drscreen_<variant>.json``, written next to ``drscreen_<variant>.tflite``: the
signatures with their input and output names, dtypes, shapes (``-1``: any batch size) and
value ranges, read back from the converted flatbuffer itself (so they are the file's, not
what the exporter meant), how the file was quantized, and the pre-processing contract:
which steps the device must run before the graph (decode, crop to the field of view,
resize) and which the graph runs itself (normalisation, the heatmap's field-of-view mask).
Must not run models (it reads the signatures, it does not invoke them).
"""

from ai_edge_litert.interpreter import Interpreter

import drscreen
from drscreen.data.fundus import FOV_THRESHOLD, MAX_BACKGROUND, MIN_FOV_FRACTION
from drscreen.export.signatures import INPUT_NAME, ScreeningFunctions
from drscreen.models.lesion_map import LESIONS

DESCRIPTION_FORMAT = 1

PREPROCESSING = {
    "device_must": [
        "decode the photograph to 8-bit RGB (not BGR), height x width x 3",
        "find the field of view: pixels whose brightest channel exceeds the darkest corner-patch "
        f"mean (capped at {MAX_BACKGROUND:g}) by {FOV_THRESHOLD:g}, cleaned by a 3x3 opening "
        "and closing",
        "crop the square around the field-of-view disc (diameter = its larger extent; centred "
        "one radius from an uncut edge when the frame cuts it; the centre square when no disc "
        f"of {MIN_FOV_FRACTION:.0%} of the short side is found), black outside the frame",
        "resize that square to the input side with antialiased bilinear filtering",
        "feed float32 values in [0, 255], NHWC, batch of any size",
    ],
    "reference_implementation": (
        "drscreen.data.edge_preprocessing.load_and_crop (numpy, OpenCV and Pillow: no "
        "TensorFlow); drscreen.data.fundus.decode_and_preprocess (TensorFlow ops)"
    ),
    "in_graph": [
        "input normalisation (o_O per-channel z-score or Graham's local average)",
        "the heatmap's field-of-view mask, recomputed from the cropped image",
        "heatmap average pooling to the heatmap size",
        "grade -> calibrated referable-DR probability (score)",
        "image-quality features and the gradability gate (quality)",
    ],
}
"""What a device runs before the graph, and what the graph does itself (one implementation:
`drscreen.data.fundus`, which the SavedModel's ``serving_default`` runs in-graph)."""

OUTPUTS = {
    "score": {"range": [0.0, 1.0], "meaning": "calibrated probability of referable DR"},
    "grade": {
        "range": [0.0, 4.0],
        "meaning": "regressed DR grade (0 none ... 4 proliferative); a regression, not "
        "clipped, so values slightly outside the nominal range occur",
    },
    "quality": {
        "range": [0.0, 1.0],
        "meaning": "probability that the photograph is gradable; ungradable (retake it) at or "
        "below the threshold of this description's quality section",
    },
    "heatmap": {
        "range": [0.0, None],
        "meaning": "sensitivity of the grade to each pixel (non-negative, unbounded), zero "
        "outside the field of view",
    },
}


def _tensor(details: dict) -> dict:
    return {
        "dtype": details["dtype"].__name__,
        "shape": [int(size) for size in details["shape_signature"]],
    }


def signature_tensors(flatbuffer: bytes) -> dict:
    """Signature -> {"inputs": {name: dtype, shape}, "outputs": {...}} of a TFLite file."""
    interpreter = Interpreter(model_content=flatbuffer)
    described = {}
    for signature in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(signature)
        described[signature] = {
            "inputs": {
                name: _tensor(details) for name, details in runner.get_input_details().items()
            },
            "outputs": {
                name: _tensor(details) for name, details in runner.get_output_details().items()
            },
        }
    return described


def edge_description(
    flatbuffer: bytes,
    file_name: str,
    variant: str,
    quantization: str,
    heatmap_agreement: str,
    quality_agreement: str,
    lesions_agreement: str,
    functions: ScreeningFunctions,
) -> dict:
    """The ``drscreen_<variant>.json`` content of one converted TFLite file."""
    signatures = signature_tensors(flatbuffer)
    for tensors in signatures.values():
        for name, tensor in tensors["inputs"].items():
            if name == INPUT_NAME:
                tensor.update({"range": [0.0, 255.0], "meaning": "RGB fundus image, cropped"})
        for name, tensor in tensors["outputs"].items():
            tensor.update(OUTPUTS.get(name, {}))
            if name == LESIONS:
                described = functions.lesions_description()
                tensor.update(range=described["range"], meaning=described["meaning"])
    calibration = functions.config.calibration
    return {
        "format": DESCRIPTION_FORMAT,
        "drscreen_version": drscreen.__version__,
        "file": file_name,
        "bytes": len(flatbuffer),
        "variant": variant,
        "quantization": quantization,
        "ops": "TFLITE_BUILTINS only (no Flex delegate, no custom ops)",
        "model_name": functions.model.name,
        "input_size": functions.input_size,
        "heatmap": {
            "method": functions.config.heatmap_method,
            "size": functions.heatmap_size,
            "agreement_with_float32": heatmap_agreement,
        },
        "lesions": {
            **functions.lesions_description(),
            "agreement_with_float32": lesions_agreement
            if functions.lesion_model is not None
            else heatmap_agreement,
        },
        "calibration": {
            "function": "sigmoid((grade - midpoint) / scale)",
            "midpoint": calibration.midpoint,
            "scale": calibration.scale,
        },
        "quality": {
            "threshold": functions.config.quality_gate.threshold,
            "ungradable_when": "quality <= threshold",
            "agreement_with_float32": quality_agreement,
        },
        "signatures": signatures,
        "preprocessing": PREPROCESSING,
    }
