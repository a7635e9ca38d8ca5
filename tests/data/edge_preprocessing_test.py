"""The TensorFlow-free pre-processing of edge devices equals `drscreen.data.fundus`."""

import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from drscreen.data import edge_preprocessing as edge
from drscreen.data import fundus
from drscreen.data.synthetic import SynthConfig
from drscreen.data.synthetic.generator import generate_fundus
from drscreen.models import build
from tests.data.fundus_test import draw_fundus


def _synthetic(size: int, seed: int) -> np.ndarray:
    return generate_fundus(SynthConfig.from_preset("standard", n=1, size=size, seed=seed), 0).image


PHOTOGRAPHS = {
    "1024 px, clipped top and bottom (Kaggle)": lambda: _synthetic(1024, 2)[100:-50],
    "768 px, clipped at the left": lambda: _synthetic(768, 3)[:, 90:],
    "300 px, enlarged to the input": lambda: _synthetic(300, 4),
    "portrait 640x480 disc": lambda: draw_fundus(640, 480, (240, 330), 200, noise=8.0),
    "no disc: the centre square": lambda: np.full((200, 260, 3), 90, np.uint8),
}


def test_constants_are_those_of_the_tensorflow_module():
    for name in ("FOV_THRESHOLD", "MAX_BACKGROUND", "MIN_FOV_FRACTION", "MIN_FOV_AREA"):
        assert getattr(edge, name) == getattr(fundus, name), name
    assert edge.NO_FIELD_OF_VIEW_REASON == fundus.NO_FIELD_OF_VIEW_REASON


@pytest.mark.parametrize("name", sorted(PHOTOGRAPHS))
@pytest.mark.parametrize("size", [64, 512])
def test_crop_equals_the_tensorflow_crop(name, size):
    """Same box, same mask, pixels within 0.01 of 255 levels (float32 sums in another
    order), on photographs of several sizes, shapes and cuts."""
    photograph = PHOTOGRAPHS[name]()
    box = fundus.field_of_view_box(fundus.field_of_view_mask(photograph)).numpy()
    assert edge.field_of_view_box(edge.field_of_view_mask(photograph)) == tuple(box)
    image, mask = edge.crop_to_field_of_view(photograph, size)
    expected_image, expected_mask = fundus.crop_to_field_of_view(photograph, size)
    assert image.dtype == np.float32 and image.shape == (size, size, 3)
    np.testing.assert_array_equal(mask, expected_mask.numpy())
    np.testing.assert_allclose(image, expected_image.numpy(), atol=0.01)


def test_the_grade_is_that_of_the_tensorflow_path_and_a_plain_resize_is_not():
    """A model's grade of the numpy crop is within 1e-3 of its grade of the TensorFlow crop;
    a plain resize of the photograph (the mistake this module prevents) is not."""
    keras.utils.set_random_seed(3)
    model = build("small", input_size=64, width=8)
    for name, make in PHOTOGRAPHS.items():
        photograph = make()
        ours, _ = edge.crop_to_field_of_view(photograph, 64)
        reference, _ = fundus.crop_to_field_of_view(photograph, 64)
        grades = model(np.stack([ours, reference.numpy()]), training=False).numpy()[:, 0]
        assert abs(grades[0] - grades[1]) < 1e-3, name
    photograph = PHOTOGRAPHS["1024 px, clipped top and bottom (Kaggle)"]()
    plain = edge.crop_square(photograph, (0, 0, min(photograph.shape[:2])), 64)
    reference, _ = fundus.crop_to_field_of_view(photograph, 64)
    grades = model(np.stack([plain, reference.numpy()]), training=False).numpy()[:, 0]
    assert abs(grades[0] - grades[1]) > 1e-2


def test_no_tensorflow_is_imported():
    """A device imports the module (and LiteRT's interpreter) without TensorFlow."""
    code = (
        "import sys, drscreen.data.edge_preprocessing; "
        "from ai_edge_litert.interpreter import Interpreter; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_a_photograph_without_a_disc_is_refused_by_name(tmp_path):
    """load_and_crop names a file whose crop finds no field of view."""
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 8, (64, 64, 3), np.uint8))
    with pytest.raises(edge.ImageError, match="wall.png: no field of view found"):
        edge.load_and_crop(str(path), 64)
