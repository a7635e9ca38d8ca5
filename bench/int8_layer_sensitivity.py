"""Which layers' int8 rounding moves the heatmap: weights rounded in Keras, one group at a time.

    python bench/int8_layer_sensitivity.py --trained=RUN_DIR_OR_MODEL.keras,... [--images=8]

For each trained model, the exported ``predict`` computation (`ScreeningFunctions`, score +
field-of-view-masked sensitivity heatmap, in TensorFlow) on synthetic photographs, with
weights rounded to int8 as `drscreen.export.weight_quantization.symmetric_int8` does (one
scale per output channel, or one per tensor): every kernel, every bias, one layer's kernel
alone, every kernel but one layer's, and the kernels `int8_weights` rounds (at least
`MIN_ELEMENTS` weights). Prints the smallest and mean per-image Pearson r with the
unrounded heatmap. No TFLite involved: this isolates the weights' rounding from the
runtime's (compare with `bench/export_latency.py`, whose ``dynamic_int8`` also rounds
activations).
Runtime: ~30 s per small model on 2 shared cores.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen.export.samples import encoded_photographs, preprocessed_images  # noqa: E402
from drscreen.export.signatures import ScreeningFunctions, SignatureConfig  # noqa: E402
from drscreen.export.weight_quantization import MIN_ELEMENTS, symmetric_int8  # noqa: E402
from drscreen.models.runs import load_model, model_input_size  # noqa: E402

_TRAINED = flags.DEFINE_list("trained", [], "Trained models (run directories or .keras files).")
_IMAGES = flags.DEFINE_integer("images", 8, "Synthetic photographs to compare on.")


def _per_channel(weights: np.ndarray) -> np.ndarray:
    values, scales = symmetric_int8(weights, weights.ndim - 1)
    return values * scales


def _per_tensor(weights: np.ndarray) -> np.ndarray:
    values, scales = symmetric_int8(weights.reshape(1, -1), 0)
    return (values * scales).reshape(weights.shape)


def _report(path: str) -> None:
    model = load_model(path)
    images, _ = preprocessed_images(
        encoded_photographs(_IMAGES.value, seed=5), model_input_size(model)
    )
    images = tf.constant(images)
    functions = ScreeningFunctions(model, SignatureConfig())
    reference = functions.predict(images)["heatmap"].numpy()
    original = {variable.path: variable.numpy() for variable in model.weights}
    kernels = [v for v in model.weights if v.path.endswith("kernel")]
    kernel_paths = {v.path for v in kernels}
    layers = [layer for layer in model.layers if {v.path for v in layer.weights} & kernel_paths]

    def kernels_of(chosen) -> dict:
        return {v.path: _per_channel for v in chosen}

    cases = {
        "every kernel, per channel": kernels_of(kernels),
        "every kernel, per tensor": {v.path: _per_tensor for v in kernels},
        "every bias, per channel": {
            v.path: _per_channel for v in model.weights if v.path.endswith("bias")
        },
        f"kernels of >= {MIN_ELEMENTS} weights (int8_weights)": kernels_of(
            [v for v in kernels if np.prod(v.shape) >= MIN_ELEMENTS]
        ),
    }
    for layer in layers:
        mine = {v.path for v in layer.weights}
        cases[f"only {layer.name}"] = kernels_of([v for v in kernels if v.path in mine])
        cases[f"all but {layer.name}"] = kernels_of([v for v in kernels if v.path not in mine])
    print(f"\n{path}: {model_input_size(model)} px, {len(images)} synthetic photographs")
    print(f"{'rounded weights':<44}{'heatmap r min / mean':>22}")
    for name, rounding in cases.items():
        for variable in model.weights:
            value = original[variable.path]
            variable.assign(rounding[variable.path](value) if variable.path in rounding else value)
        heatmaps = functions.predict(images)["heatmap"].numpy()
        rs = [
            np.corrcoef(a.ravel(), b.ravel())[0, 1]
            for a, b in zip(heatmaps, reference, strict=True)
        ]
        print(f"{name:<44}{min(rs):>13.4f} / {np.mean(rs):.4f}", flush=True)


def main(argv: list[str]) -> None:
    del argv
    for path in _TRAINED.value:
        _report(path)


if __name__ == "__main__":
    app.run(main)
