"""Fixtures of the export tests: one tiny model exported once in every format."""

import keras
import numpy as np
import pytest

from drscreen.export import ExportConfig, export
from drscreen.export.samples import encoded_photographs, preprocessed_images
from drscreen.models import build

INPUT_SIZE = 64


@pytest.fixture(scope="session")
def model() -> keras.Model:
    """The small network at its smallest input (64 px), width 4: exports in seconds."""
    keras.utils.set_random_seed(7)
    return build("small", input_size=INPUT_SIZE, width=4)


@pytest.fixture(scope="session")
def exported(model, tmp_path_factory):
    """``base/1``: SavedModel, TFLite float32/float16/int8 and ONNX of `model`."""
    base = str(tmp_path_factory.mktemp("export_base"))
    return export(model, base, ExportConfig(calibration_images=8), source="fixture")


@pytest.fixture(scope="session")
def photographs() -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Three synthetic JPEG photographs, and their cropped images and FOV masks."""
    encoded = encoded_photographs(3, seed=11)
    images, masks = preprocessed_images(encoded, INPUT_SIZE)
    return encoded, images, masks
