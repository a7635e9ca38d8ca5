"""Export latency and agreement: TFLite variants vs the float SavedModel, heatmap vs score.

    python bench/export_latency.py [--input_size=128] [--width=8] [--images=8] [--repeats=20]

Exports a randomly initialised small network (all formats) to a temporary directory, then
prints for each TFLite variant its file size, latency per image (batch 1) and agreement with
the SavedModel's ``predict_float`` (largest score difference, mean heatmap Pearson r), the
int8 and float16 latency over float32, and the SavedModel heatmap signature latency over the
score-only signature. Full-integer quantization of the heatmap signature is tried in a
subprocess (LiteRT may abort on it) and its heatmap correlation reported.
"""

import os
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from ai_edge_litert.interpreter import Interpreter

from drscreen.export import ExportConfig, export, tflite
from drscreen.export.samples import encoded_photographs, preprocessed_images
from drscreen.models import build

_INPUT_SIZE = flags.DEFINE_integer("input_size", 128, "Model input side in pixels.")
_WIDTH = flags.DEFINE_integer("width", 8, "First-stage width of the small network.")
_IMAGES = flags.DEFINE_integer("images", 8, "Synthetic photographs to compare on.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed passes over the images.")
_INT8_HEATMAP = flags.DEFINE_string(
    "int8_heatmap_child", None, "Internal: SavedModel dir for the int8 heatmap subprocess."
)


def _seconds_per_image(run, images: np.ndarray, repeats: int) -> float:
    for image in images[:2]:
        run(image[np.newaxis])
    start = time.perf_counter()
    for _ in range(repeats):
        for image in images:
            run(image[np.newaxis])
    return (time.perf_counter() - start) / (repeats * len(images))


def _mean_pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        np.mean([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)])
    )


def _int8_heatmap_child(saved_model_dir: str) -> None:
    """Subprocess: full-integer predict_float; prints the mean heatmap correlation."""
    size = int(tf.saved_model.load(saved_model_dir).signatures["predict_float"]
               .structured_input_signature[1]["images"].shape[1])  # fmt: skip
    images, _ = preprocessed_images(encoded_photographs(16, seed=1), size)
    converter = tflite.converter(saved_model_dir, "int8", ("predict_float",), images[8:])
    runner = Interpreter(model_content=converter.convert()).get_signature_runner("predict_float")
    expected = tf.saved_model.load(saved_model_dir).signatures["predict_float"]
    outputs = [runner(images=image[np.newaxis])["heatmap"][0] for image in images[:8]]
    reference = expected(images=tf.constant(images[:8]))["heatmap"].numpy()
    print(f"INT8_HEATMAP_R {_mean_pearson(np.stack(outputs), reference):.3f}")


def _int8_heatmap_report(saved_model_dir: str) -> str:
    result = subprocess.run(
        [sys.executable, __file__, f"--int8_heatmap_child={saved_model_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith("INT8_HEATMAP_R"):
            return f"mean heatmap Pearson r = {line.split()[1]}"
    return f"LiteRT failed (exit code {result.returncode}: aborted on a quantized comparison)"


def main(argv: list[str]) -> None:
    del argv
    if _INT8_HEATMAP.value:
        _int8_heatmap_child(_INT8_HEATMAP.value)
        return
    keras.utils.set_random_seed(0)
    model = build("small", input_size=_INPUT_SIZE.value, width=_WIDTH.value)
    images, _ = preprocessed_images(encoded_photographs(_IMAGES.value, seed=5), _INPUT_SIZE.value)
    with tempfile.TemporaryDirectory() as base:
        result = export(model, base, ExportConfig(calibration_images=32))
        signatures = tf.saved_model.load(result.path).signatures
        reference = signatures["predict_float"](images=tf.constant(images))
        timings = {}
        for name in ("predict_float", "predict_score"):
            function = signatures[name]
            timings[name] = _seconds_per_image(
                lambda x, f=function: f(images=tf.constant(x)), images, _REPEATS.value
            )
        parameters = model.count_params()
        print(f"model: small, {_INPUT_SIZE.value} px, width {_WIDTH.value}, {parameters} "
              f"parameters; {_IMAGES.value} synthetic photographs")  # fmt: skip
        print(f"{'variant':<9}{'signature':<15}{'bytes':>9}{'ms/image':>10}"
              f"{'max |Δscore|':>14}{'heatmap r':>11}")  # fmt: skip
        for variant in tflite.VARIANTS:
            path = os.path.join(result.path, "tflite", tflite.file_name(variant))
            signature = tflite.VARIANT_SIGNATURES[variant][0]
            runner = Interpreter(model_path=path).get_signature_runner(signature)
            outputs = runner(images=images)
            timings[variant] = _seconds_per_image(
                lambda x, r=runner: r(images=x), images, _REPEATS.value
            )
            score_diff = np.abs(outputs["score"] - reference["score"].numpy()).max()
            r = (
                f"{_mean_pearson(outputs['heatmap'], reference['heatmap'].numpy()):.5f}"
                if "heatmap" in outputs
                else "n/a"
            )
            if variant == "float32":
                score_runner = Interpreter(model_path=path).get_signature_runner("predict_score")
                timings["float32_score"] = _seconds_per_image(
                    lambda x, r=score_runner: r(images=x), images, _REPEATS.value
                )
            print(f"{variant:<9}{signature:<15}{os.path.getsize(path):>9}"
                  f"{1e3 * timings[variant]:>10.2f}{score_diff:>14.2e}{r:>11}")  # fmt: skip
        print(f"SavedModel predict_float {1e3 * timings['predict_float']:.2f} ms/image, "
              f"predict_score {1e3 * timings['predict_score']:.2f} ms/image")  # fmt: skip
        print(f"TFLite float32 predict_score {1e3 * timings['float32_score']:.2f} ms/image")
        print(f"ratio TFLite int8 / float32 latency (predict_score): "
              f"{timings['int8'] / timings['float32_score']:.2f}")  # fmt: skip
        print(f"ratio TFLite float16 / float32 latency: "
              f"{timings['float16'] / timings['float32']:.2f}")  # fmt: skip
        print(f"ratio SavedModel heatmap / score-only signature latency: "
              f"{timings['predict_float'] / timings['predict_score']:.2f}")  # fmt: skip
        print(f"int8 full-integer heatmap signature: {_int8_heatmap_report(result.path)}")


if __name__ == "__main__":
    app.run(main)
