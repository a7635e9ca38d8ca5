"""Send fundus photographs to a drscreen / TensorFlow Serving server; save heatmap overlays.

    python serving/query_example.py --server=127.0.0.1:8500 --protocol=grpc \
        --output_dir=/tmp/overlays photo1.jpg photo2.png [--quality_threshold=Q]

For REST use ``--server=http://127.0.0.1:8501 --protocol=rest``. Every photograph given gets
a line: a file that cannot be read or that the server refuses is named with the reason and
the others are still graded; a photograph whose quality (the probability that it is
gradable) is at or below the threshold is "cannot grade — retake", with no score; the others
get their referable-DR score, grade and quality. The threshold is the export's
``quality.threshold`` (its ``drscreen_export.json`` or ``model_card.json``); without
``--quality_threshold``, the threshold of drscreen's shipped gate, which the first line says.

Each decoded photograph also gets ``<output_dir>/<image stem>_heatmap.png``: the photograph
at its own resolution (at most 1024 px) beside the heatmap mapped back onto it, with a
colour scale and, unless it cannot be graded, the strongest lesion candidates ringed
(`drscreen.heatmaps.overlay.photograph_panel` and
`drscreen.evaluation.lesions.candidates_to_mark`, as ``drscreen predict`` draws it). The
square the heatmap covers is found with `drscreen.data.fundus.crop_to_field_of_view_box`:
the crop the serving signature applies before the model, so heatmap and photograph line up.
Exit status 1 when a photograph could not be read or the server refused it (after answering
all the others).
"""

import os
import sys

import numpy as np
from absl import app, flags

from drscreen.data.fundus import crop_to_field_of_view_box
from drscreen.data.image_io import ImageError, load_rgb
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.heatmaps.overlay import DEFAULT_ALPHA, photograph_panel, save_image
from drscreen.models.quality import default_quality_gate
from drscreen.serving.client import GrpcClient, RestClient
from drscreen.serving.errors import ServingError

_SERVER = flags.DEFINE_string("server", "127.0.0.1:8500", "gRPC host:port, or REST base URL.")
_PROTOCOL = flags.DEFINE_enum("protocol", "grpc", ["grpc", "rest"], "API to query.")
_MODEL_NAME = flags.DEFINE_string("model_name", "drscreen", "Served model name.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the overlay PNGs go.")
_ALPHA = flags.DEFINE_float(
    "alpha", DEFAULT_ALPHA, "Heatmap opacity in the overlay at its highest values."
)
_QUALITY_THRESHOLD = flags.DEFINE_float(
    "quality_threshold",
    None,
    "Cannot grade at or below this quality: the export's quality.threshold (default: "
    "drscreen's shipped gate).",
)


def _predict(encoded: list[bytes]) -> dict[str, np.ndarray]:
    if _PROTOCOL.value == "grpc":
        with GrpcClient(_SERVER.value, _MODEL_NAME.value) as client:
            return client.predict(encoded)
    return RestClient(_SERVER.value, _MODEL_NAME.value).predict(encoded)


def _outputs(paths: list[str], encoded: list[bytes]) -> list[dict | str]:
    """Each photograph's outputs, or why the server refused it: one request for all, then,
    when it is refused, one request each so that the others are still graded."""
    try:
        batch = _predict(encoded)
        return [{name: values[i] for name, values in batch.items()} for i in range(len(paths))]
    except ServingError:
        pass
    results: list[dict | str] = []
    for data in encoded:
        try:
            single = _predict([data])
            results.append({name: values[0] for name, values in single.items()})
        except ServingError as error:
            results.append(f"refused by the server: {error}")
    return results


def main(argv: list[str]) -> None:
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give at least one image path")
    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required")
    threshold = _QUALITY_THRESHOLD.value
    if threshold is None:
        threshold = default_quality_gate().threshold
        print(
            f"cannot grade at quality <= {threshold:.3f}: drscreen's shipped gate (pass "
            "--quality_threshold=<the export's quality.threshold> for a refitted gate)"
        )
    readable, images, encoded = [], [], []
    for path in paths:
        try:
            images.append(load_rgb(path))
        except ImageError as error:
            print(f"{path}: cannot grade — {error.reason}")
            continue
        with open(path, "rb") as file:
            encoded.append(file.read())
        readable.append(path)
    failed = len(paths) - len(readable)
    results = _outputs(readable, encoded) if readable else []
    os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
    for path, image, result in zip(readable, images, results, strict=True):
        if isinstance(result, str):
            print(f"{path}: cannot grade — {result}")
            failed += 1
            continue
        gradable = float(result["quality"]) > threshold
        heatmap = result["heatmap"]  # FOV-masked by the server
        _, fov, box = crop_to_field_of_view_box(image, heatmap.shape[0])
        box, fov = tuple(int(value) for value in box.numpy()), fov.numpy() > 0.5
        marks = candidates_to_mark(heatmap, fov) if gradable else None
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(_OUTPUT_DIR.value, f"{stem}_heatmap.png")
        save_image(target, photograph_panel(image, heatmap, box, fov, marks, alpha=_ALPHA.value))
        if not gradable:
            print(
                f"{path}: cannot grade — retake (quality {float(result['quality']):.3f} <= "
                f"{threshold:.3f}) -> {target}"
            )
            continue
        print(
            f"{path}: score={float(result['score']):.4f} grade={float(result['grade']):.3f} "
            f"quality={float(result['quality']):.3f} -> {target}"
        )
    if failed:
        sys.exit(f"{failed} of the {len(paths)} photographs could not be read or were refused")


if __name__ == "__main__":
    app.run(main)
