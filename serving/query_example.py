"""Send fundus photographs to a drscreen / TensorFlow Serving server; save heatmap overlays.

    python serving/query_example.py --server=127.0.0.1:8500 --protocol=grpc \
        --output_dir=/tmp/overlays photo1.jpg photo2.png

For REST use ``--server=http://127.0.0.1:8501 --protocol=rest``. Prints each image's
referable-DR score, grade and quality (the probability that the photograph is gradable; retake
it when quality is at or below the ``quality.threshold`` of the export's description), and
writes ``<output_dir>/<image stem>_heatmap.png``: the photograph at its own resolution (at most
1024 px) beside the heatmap mapped back onto it, with a colour scale and the strongest lesion
candidates ringed (`drscreen.heatmaps.overlay.photograph_panel` and
`drscreen.evaluation.lesions.candidates_to_mark`, as ``drscreen predict`` draws it). The square
the heatmap covers is found with `drscreen.data.fundus.crop_to_field_of_view_box`: the crop the
serving signature applies before the model, so heatmap and photograph line up.
"""

import os
import sys

from absl import app, flags

from drscreen.data.fundus import crop_to_field_of_view_box
from drscreen.data.image_io import ImageError, load_rgb
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.heatmaps.overlay import DEFAULT_ALPHA, photograph_panel, save_image
from drscreen.serving.client import GrpcClient, RestClient

_SERVER = flags.DEFINE_string("server", "127.0.0.1:8500", "gRPC host:port, or REST base URL.")
_PROTOCOL = flags.DEFINE_enum("protocol", "grpc", ["grpc", "rest"], "API to query.")
_MODEL_NAME = flags.DEFINE_string("model_name", "drscreen", "Served model name.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the overlay PNGs go.")
_ALPHA = flags.DEFINE_float(
    "alpha", DEFAULT_ALPHA, "Heatmap opacity in the overlay at its highest values."
)


def main(argv: list[str]) -> None:
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give at least one image path")
    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required")
    images, encoded = [], []
    for path in paths:
        try:
            images.append(load_rgb(path))
        except ImageError as error:
            raise app.UsageError(str(error)) from None
        with open(path, "rb") as file:
            encoded.append(file.read())
    if _PROTOCOL.value == "grpc":
        with GrpcClient(_SERVER.value, _MODEL_NAME.value) as client:
            outputs = client.predict(encoded)
    else:
        outputs = RestClient(_SERVER.value, _MODEL_NAME.value).predict(encoded)
    os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
    for index, (path, image) in enumerate(zip(paths, images, strict=True)):
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(_OUTPUT_DIR.value, f"{stem}_heatmap.png")
        heatmap = outputs["heatmap"][index]  # FOV-masked by the server
        _, fov, box = crop_to_field_of_view_box(image, heatmap.shape[0])
        box, fov = tuple(int(value) for value in box.numpy()), fov.numpy() > 0.5
        panel = photograph_panel(
            image, heatmap, box, fov, candidates_to_mark(heatmap, fov), alpha=_ALPHA.value
        )
        save_image(target, panel)
        print(
            f"{path}: score={outputs['score'][index]:.4f} grade={outputs['grade'][index]:.3f}"
            f" quality={outputs['quality'][index]:.3f} -> {target}",
            file=sys.stdout,
        )


if __name__ == "__main__":
    app.run(main)
