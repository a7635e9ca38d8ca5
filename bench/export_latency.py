"""Export latency, size and agreement: every TFLite variant and ONNX vs the float SavedModel.

    python bench/export_latency.py [--models=small,oO_netA,oO_netB] [--images=4] [--repeats=3]
        [--threads=2] [--int8_heatmap] [--trained=RUN_DIR_OR_MODEL.keras,...]

For each model at its real input size (the small network at 128 px width 8, o_O nets A and B
at 448 px; random weights) exports every format to a temporary directory, then prints for
each TFLite variant its file size, the latency per image (batch 1, LiteRT's signature runner
with ``--threads`` threads; every variant's ``predict_score`` and ``predict_float`` called in
turn on each image, so all see the same load) and the agreement with the SavedModel's
``predict_float`` on synthetic photographs (largest score difference, smallest and mean
per-image heatmap Pearson r), then ONNX Runtime's ``predict_float`` latency and agreement
and the SavedModel's heatmap/score latency ratio. ``--int8_heatmap`` also tries
full-integer quantization of the heatmap signature in a subprocess (LiteRT may abort on it)
and reports its heatmap correlation.
``--trained`` reports trained models (a run directory or ``.keras`` file each, at their own
input size) after the random-weight ones: quantisation reroutes a trained net's gradient
differently.
Runtime: ~1 min for the small net, ~6 min for each o_O net on 2 shared cores.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from drscreen.export import ExportConfig, export, tflite  # noqa: E402
from drscreen.export.samples import encoded_photographs, preprocessed_images  # noqa: E402
from drscreen.models import build  # noqa: E402
from drscreen.models.runs import load_model, model_input_size  # noqa: E402

MODEL_SIZES = {"small": (128, {"width": 8}), "oO_netA": (448, {}), "oO_netB": (448, {})}

_MODELS = flags.DEFINE_string("models", "small,oO_netA,oO_netB", "Models to export.")
_TRAINED = flags.DEFINE_list("trained", [], "Trained models (run directories or .keras files).")
_IMAGES = flags.DEFINE_integer("images", 4, "Synthetic photographs to compare and time on.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes over the images.")
_THREADS = flags.DEFINE_integer("threads", 2, "LiteRT and ONNX Runtime threads.")
_INT8_HEATMAP = flags.DEFINE_bool(
    "int8_heatmap", False, "Also try the heatmap signature with full-integer quantization."
)
_INT8_CHILD = flags.DEFINE_string(
    "int8_heatmap_child", None, "Internal: SavedModel dir for the int8 heatmap subprocess."
)


def _interleaved_ms(runs: dict, images: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per image of each ``run(image)``, the runs called in turn per image."""
    for run in runs.values():
        run(images[:1])
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for image in images:
            for name, run in runs.items():
                start = time.perf_counter()
                run(image[np.newaxis])
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def _pearsons(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(a, b, strict=True)]


def _int8_heatmap_child(saved_model_dir: str) -> None:
    """Subprocess: full-integer predict_float; prints the mean heatmap correlation."""
    signature = tf.saved_model.load(saved_model_dir).signatures["predict_float"]
    size = int(signature.structured_input_signature[1]["images"].shape[1])
    images, _ = preprocessed_images(encoded_photographs(16, seed=1), size)
    converter = tflite.converter(saved_model_dir, "int8", ("predict_float",), images[8:])
    runner = Interpreter(model_content=converter.convert()).get_signature_runner("predict_float")
    outputs = np.stack([runner(images=image[np.newaxis])["heatmap"][0] for image in images[:8]])
    reference = signature(images=tf.constant(images[:8]))["heatmap"].numpy()
    print(f"INT8_HEATMAP_R {np.mean(_pearsons(outputs, reference)):.3f}")


def _int8_heatmap_report(saved_model_dir: str) -> str:
    result = subprocess.run(
        [sys.executable, __file__, f"--int8_heatmap_child={saved_model_dir}"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith("INT8_HEATMAP_R"):
            return f"mean heatmap Pearson r = {line.split()[1]}"
    return f"LiteRT failed (exit code {result.returncode})"


def _random_weights(name: str) -> keras.Model:
    size, options = MODEL_SIZES[name]
    keras.utils.set_random_seed(0)
    return build(name, input_size=size, **options)


def _report_model(name: str, model: keras.Model, weights: str) -> None:
    size = model_input_size(model)
    images, _ = preprocessed_images(encoded_photographs(_IMAGES.value, seed=5), size)
    threads, repeats = _THREADS.value, _REPEATS.value
    with tempfile.TemporaryDirectory() as base:
        result = export(model, base, ExportConfig(calibration_images=16))
        signatures = tf.saved_model.load(result.path).signatures
        reference = {k: v.numpy() for k, v in signatures["predict_float"](images=images).items()}
        print(f"\n{name} at {size} px, {model.count_params():,} parameters, {weights}; "
              f"{len(images)} synthetic photographs, batch 1, {threads} threads, "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'variant':<13}{'MB':>7}{'score ms':>10}{'heatmap ms':>12}{'ratio':>7}"
              f"{'max |Δscore|':>14}{'heatmap r min/mean':>20}")  # fmt: skip
        runners, runs = {}, {}
        for variant in tflite.VARIANTS:
            path = os.path.join(result.path, "tflite", tflite.file_name(variant))
            for signature in tflite.VARIANT_SIGNATURES[variant]:
                interpreter = Interpreter(model_path=path, num_threads=threads)
                runner = interpreter.get_signature_runner(signature)
                runners[variant, signature] = runner
                runs[variant, signature] = lambda x, r=runner: r(images=x)
        ms = _interleaved_ms(runs, images, repeats)  # every variant sees the same load
        for variant in tflite.VARIANTS:
            path = os.path.join(result.path, "tflite", tflite.file_name(variant))
            first = runners[variant, tflite.VARIANT_SIGNATURES[variant][0]]
            outputs = {key: [] for key in ("score", "heatmap")}
            for image in images:
                result_one = first(images=image[np.newaxis])
                for key in outputs:
                    if key in result_one:
                        outputs[key].append(result_one[key][0])
            score_diff = np.abs(np.array(outputs["score"]) - reference["score"]).max()
            heatmap_ms, ratio, r = "n/a", "", "n/a"
            score_ms = ms[variant, "predict_score"]
            if outputs["heatmap"]:
                rs = _pearsons(np.stack(outputs["heatmap"]), reference["heatmap"])
                r = f"{min(rs):.4f}/{np.mean(rs):.4f}"
                heatmap_ms = f"{ms[variant, 'predict_float']:.1f}"
                ratio = f"x{ms[variant, 'predict_float'] / score_ms:.2f}"
            print(f"{variant:<13}{os.path.getsize(path) / 1e6:>7.1f}{score_ms:>10.1f}"
                  f"{heatmap_ms:>12}{ratio:>7}{score_diff:>14.2e}{r:>20}", flush=True)  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(
            os.path.join(result.path, "onnx", "drscreen.onnx"), options,
            providers=["CPUExecutionProvider"],
        )  # fmt: skip
        names = [output.name for output in session.get_outputs()]
        onnx_run = {"onnx": lambda x: session.run(None, {"images": x})}
        onnx_ms = _interleaved_ms(onnx_run, images, repeats)
        heatmap_index = names.index("heatmap")
        onnx_maps = np.stack(
            [session.run(None, {"images": image[np.newaxis]})[heatmap_index][0] for image in images]
        )
        print(f"ONNX Runtime predict_float {onnx_ms['onnx']:.1f} ms/image, heatmap r min "
              f"{min(_pearsons(onnx_maps, reference['heatmap'])):.5f}")  # fmt: skip
        saved = _interleaved_ms(
            {key: (lambda x, f=signatures[key]: f(images=tf.constant(x))) for key in
             ("predict_score", "predict_float")}, images, repeats,
        )  # fmt: skip
        heatmap_ms, score_ms = saved["predict_float"], saved["predict_score"]
        print(f"SavedModel predict_float / predict_score: {heatmap_ms:.1f} / {score_ms:.1f} ms = "
              f"x{heatmap_ms / score_ms:.2f}")  # fmt: skip
        if _INT8_HEATMAP.value:
            print(f"int8 full-integer heatmap signature: {_int8_heatmap_report(result.path)}")


def main(argv: list[str]) -> None:
    del argv
    if _INT8_CHILD.value:
        _int8_heatmap_child(_INT8_CHILD.value)
        return
    for name in _MODELS.value.split(","):
        if name:
            _report_model(name, _random_weights(name), "random weights")
    for path in _TRAINED.value:
        _report_model(path, load_model(path), f"weights of {path}")


if __name__ == "__main__":
    app.run(main)
