"""The README's edge snippet runs a .tflite file on a JPEG without TensorFlow, and gives what
the SavedModel gives on TensorFlow's crop of the same photograph.

The reference decodes with Pillow, as the snippet and every drscreen command do: the
SavedModel's ``serving_default`` decodes JPEG with TensorFlow's fast integer DCT, up to 8
grey levels away (0.01 in score on these photographs), so it is compared on a lossless PNG
of the photograph; its ``quality`` uses the photograph's own field-of-view mask, cropped,
where ``predict_float`` (and so TFLite) recomputes the mask from the crop (0.02-0.03 apart
here): both reported to the lead, not this test's to hide."""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import tensorflow as tf

from drscreen.data.fundus import crop_to_field_of_view
from drscreen.data.image_io import load_rgb
from tests.fixture_model import INPUT_SIZE

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- edge snippet: run by tests/export/edge_snippet_test.py -->"


def _snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(MARKER, 1)[1]
    return re.search(r"```python\n(.*?)```", block, re.DOTALL).group(1)


def _run_snippet(tflite_file: Path, photograph: Path) -> dict[str, float]:
    """The README's snippet on these files, in a fresh interpreter that must not import
    TensorFlow; the figures it prints."""
    code = _snippet()
    placeholder = '"exports/drscreen/1/tflite/drscreen_float32.tflite"'
    assert code.count(placeholder) == 1 and code.count('"eye.jpg"') == 1
    code = code.replace(placeholder, repr(str(tflite_file)))
    code = code.replace('"eye.jpg"', repr(str(photograph)))
    code += (
        "\nimport sys\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return {k: float(v) for k, v in re.findall(r"(score|grade|quality) (-?[0-9.]+)", result.stdout)}


@pytest.mark.xdist_group("shared_export")
def test_the_readme_snippet_scores_a_photograph_as_the_saved_model_does(
    exported, photographs, tmp_path
):
    encoded, _, _ = photographs
    tflite_file = Path(exported.path) / "tflite" / "drscreen_float32.tflite"
    loaded = tf.saved_model.load(exported.path)
    jpeg = tmp_path / "eye.jpg"
    jpeg.write_bytes(encoded[0])
    printed = _run_snippet(tflite_file, jpeg)
    image, _ = crop_to_field_of_view(load_rgb(str(jpeg)), INPUT_SIZE)
    reference = loaded.signatures["predict_float"](images=image[tf.newaxis])
    for name in ("score", "grade", "quality"):
        assert printed[name] == pytest.approx(float(reference[name][0]), abs=1e-3), name
    png = tmp_path / "eye.png"
    cv2.imwrite(str(png), cv2.cvtColor(load_rgb(str(jpeg)), cv2.COLOR_RGB2BGR))
    printed = _run_snippet(tflite_file, png)
    served = loaded.signatures["serving_default"](images=tf.constant([png.read_bytes()]))
    for name in ("score", "grade"):
        assert printed[name] == pytest.approx(float(served[name][0]), abs=1e-3), name
