"""TFLite conversion with built-in ops only: float32, float16 and int8 variants.

Owns converting the float signatures of an exported SavedModel to TFLite flatbuffers that
run on any LiteRT runtime without the Flex delegate (``TFLITE_BUILTINS`` only; the heatmap
is made of forward ops, see `drscreen.heatmaps.backprop`). Inputs and outputs stay float32
in every variant, with the names of the SavedModel signatures (``images`` -> ``score``,
``grade``, ``heatmap``, ``quality``, ``lesions``).

Variants:

- ``float32``: ``predict_float`` (score, heatmap and lesions) and ``predict_score``;
- ``float16``: the same, weights stored as float16 (half the size, same maths);
- ``int8_weights``: the same, convolution, dense and untied-bias weights stored as int8 with
  one scale per channel and every op computing in float32
  (`drscreen.export.weight_quantization`): 0.29 of float32's size (net A), float32's
  speed (XNNPACK unpacks the weights once, when it prepares the graph, so memory at run time
  is float32's too) and the heatmap within r >= 0.99 of float on trained nets: rounding the
  weights is the only error, and the first convolutions, where it matters, stay float;
- ``dynamic_int8``: the same weights as int8, but convolutions and matmuls run the
  converter's dynamic-range (hybrid) kernels, which also quantize their float activations
  on the fly, forward and backward; the untied biases are stored as in ``int8_weights``. A
  quarter of float32's size, the fastest score and heatmap, but the heatmap only roughly
  that of float: rounding activations and weights to 8 bits moves forward activations
  across leaky-ReLU kinks and max-pooling ties, which reroutes the gradient (per-image r
  down to 0.91-0.97 on trained small nets, 0.66 on random-weight net A;
  `bench/export_latency.py --trained`);
- ``int8``: full-integer quantization (every op int8, calibrated on synthetic fundus
  photographs), ``predict_score`` only. The heatmap does NOT survive full-integer
  quantization: its backward pass multiplies by masks computed from quantized activations
  (leaky-ReLU signs, max-pooling argmax masks) and the gradient spans orders of magnitude
  one calibrated scale cannot hold; the heatmap's correlation with the float one falls to
  about 0.5 on random nets and 0.9 on the trained small net, and on net A LiteRT refuses a
  quantized division whose divisor rounds to zero (earlier graphs, with bool ops, made it
  abort). `bench/export_latency.py` measures this in a subprocess.

Must not run models (see the tests and the benchmark for that).
"""

from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError

from drscreen.export.signatures import INPUT_NAME, PREDICT_FLOAT, PREDICT_SCORE
from drscreen.export.weight_quantization import MIN_ELEMENTS, quantize_weights

VARIANTS = ("float32", "float16", "int8_weights", "dynamic_int8", "int8")
VARIANT_SIGNATURES = {
    "float32": (PREDICT_FLOAT, PREDICT_SCORE),
    "float16": (PREDICT_FLOAT, PREDICT_SCORE),
    "int8_weights": (PREDICT_FLOAT, PREDICT_SCORE),
    "dynamic_int8": (PREDICT_FLOAT, PREDICT_SCORE),
    "int8": (PREDICT_SCORE,),
}
VARIANT_QUANTIZATION = {
    "float32": "none",
    "float16": "float16 weights, float32 computation",
    "int8_weights": "int8 convolution, dense and untied-bias weights of at least "
    f"{MIN_ELEMENTS:,} elements (per channel, read by DEQUANTIZE), float32 computation",
    "dynamic_int8": "int8 convolution and dense weights (dynamic range: activations quantized "
    "on the fly inside them), int8 untied biases, float32 activations elsewhere",
    "int8": "full integer: int8 weights and activations, float32 input and outputs",
}
VARIANT_HEATMAP_AGREEMENT = {
    "float32": "the SavedModel's heatmap (r = 1.0000)",
    "float16": "close to float32 (per-image r >= 0.99 on random-weight o_O nets)",
    "int8_weights": "close to float32 on trained networks (per-image r >= 0.99 on a trained "
    "net A and trained small nets; lower on random-weight o_O nets)",
    "dynamic_int8": "approximate (smallest per-image r with float32 0.91-0.97 on trained small "
    "nets, about 0.7 on random-weight o_O nets): prefer int8_weights or float16 where the "
    "heatmap matters",
    "int8": "no heatmap (score signature only)",
}
"""How each variant's heatmap compares with float32 (`bench/export_latency.py`), for its
description beside the file."""
VARIANT_QUALITY_AGREEMENT = {
    "float32": "the SavedModel's quality (|difference| about 1e-6)",
    "float16": "close to float32 (|difference| about 1e-3)",
    "int8_weights": "the SavedModel's quality (the gate's filters stay float, |difference| "
    "about 1e-6)",
    "dynamic_int8": "the SavedModel's quality (the gate's filters stay float, |difference| "
    "about 1e-6)",
    "int8": "unreliable: full-integer quantization of the image-quality figures moves quality "
    "by up to 0.45; gate photographs with another variant",
}
"""How each variant's ``quality`` compares with float32 (`tests/export/tflite_test.py`)."""
VARIANT_LESIONS_AGREEMENT = {
    "float32": "the SavedModel's lesions (|difference| about 1e-6)",
    "float16": "close to float32 (|difference| up to 1e-3 in probability on a trained student)",
    "int8_weights": "the SavedModel's lesions for a student whose kernels are all under "
    f"{MIN_ELEMENTS:,} elements (the default width 16: |difference| about 1e-6); a wider "
    "student's large kernels are rounded",
    "dynamic_int8": "approximate: |difference| up to 0.05 in probability (per-image r >= 0.997) "
    "on a trained student; prefer float16 or int8_weights where the map matters",
    "int8": "no lesions (score signature only)",
}
"""How each variant's ``lesions`` compares with float32, measured on the quickstart run's
trained lesion student (128 px, 16 photographs; a student-less model's lesions are its
heatmap, which `VARIANT_HEATMAP_AGREEMENT` describes)."""


def file_name(variant: str) -> str:
    """The TFLite file name of ``variant`` inside an export's ``tflite/`` directory."""
    return f"drscreen_{variant}.tflite"


def description_name(variant: str) -> str:
    """The edge-packaging description of ``variant``, beside its file (`drscreen.export.edge`)."""
    return f"drscreen_{variant}.json"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; variants: {', '.join(VARIANTS)}")


def _representative(images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for index in range(len(images)):
        yield {INPUT_NAME: images[index : index + 1].astype(np.float32)}


def converter(
    saved_model_dir: str,
    variant: str,
    signatures: tuple[str, ...],
    representative_images: np.ndarray | None = None,
) -> tf.lite.TFLiteConverter:
    """A configured `TFLiteConverter` for ``signatures`` of a SavedModel as ``variant``.

    ``int8_weights`` converts as ``float32``: `convert` then stores its weights as int8.

    Parameters
    ----------
    saved_model_dir:
        An export written by `drscreen.export.saved_model.write_saved_model`.
    variant:
        One of `VARIANTS`.
    signatures:
        Float signatures to convert (one when ``variant`` is ``int8``).
    representative_images:
        float32 (N, S, S, 3) calibration images, needed by ``int8``.

    Raises
    ------
    ValueError
        For an unknown variant, or ``int8`` without calibration images or with several
        signatures.
    """
    _check_variant(variant)
    if variant == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError("the int8 variant needs representative_images for calibration")
        if len(signatures) != 1:
            raise ValueError(f"int8 converts one signature at a time, got {signatures}")
    result = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signatures)
    )
    result.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        result.optimizations = [tf.lite.Optimize.DEFAULT]
        result.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        result.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        result.optimizations = [tf.lite.Optimize.DEFAULT]
        result.representative_dataset = lambda: _representative(representative_images)
        result.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return result


def convert(
    saved_model_dir: str,
    variant: str,
    representative_images: np.ndarray | None = None,
    float32: bytes | None = None,
) -> bytes:
    """Convert the SavedModel's `VARIANT_SIGNATURES` of ``variant`` to a TFLite flatbuffer.

    ``float32``, this SavedModel's ``float32`` flatbuffer when already converted, is what
    ``int8_weights`` rewrites instead of converting it again.

    Raises
    ------
    RuntimeError
        If the conversion fails, e.g. because an op has no TFLite built-in (a heatmap
        method drawing random numbers), naming the variant.
    """
    _check_variant(variant)
    if variant == "int8_weights" and float32 is not None:
        return quantize_weights(float32)
    configured = converter(
        saved_model_dir, variant, VARIANT_SIGNATURES[variant], representative_images
    )
    try:
        flatbuffer = configured.convert()
    except (ConverterError, tf.errors.OpError, RuntimeError) as error:
        raise RuntimeError(
            f"TFLite {variant} conversion of {saved_model_dir} with built-in ops only failed: "
            f"{error}"
        ) from error
    if variant in ("int8_weights", "dynamic_int8"):
        return quantize_weights(flatbuffer)
    return flatbuffer
