"""The shared model of the test session, and the photographs it was trained to tell apart.

An untrained network grades every photograph alike (the old fixture scored 0.00223-0.00227 on
three different ones), so a test comparing two runtimes, two decoders or two orientations
within any tolerance could not fail. This network is trained until its grades spread: the
synthetic photographs get their ICDR grades (the fixture's three: 4, 0 and 3) and the
bad-input matrix's photograph gets grade 1 upright and grade 3 turned as its EXIF case is
stored. `tests.conftest` builds it once per session.
"""

import cv2
import keras
import numpy as np

from drscreen.data.synthetic import SynthConfig, generate_fundus
from drscreen.export.samples import PHOTO_SIZE, encoded_photographs, preprocessed_images
from drscreen.models import build
from drscreen.models.calibration import Calibration
from tests import bad_inputs

INPUT_SIZE = 64
"""Input side of the shared model and of the pre-processed photographs."""

PHOTOGRAPH_SEED = 11
"""Seed of the synthetic photographs: the fixture's three and the model's training set."""

TRAINING_PHOTOGRAPHS = 12
"""Synthetic photographs the model is trained on; the fixture's three are the first."""

ORIENTATION_GRADES = (1.0, 3.0)
"""The grades the model learns for the matrix photograph upright and turned."""

EXPORT_CALIBRATION = Calibration(midpoint=2.0, scale=1.0)
"""The exported score's calibration: the grades 4, 0 and 3 of the fixture's photographs become
scores 0.88, 0.12 and 0.73, where the default (1.5, 0.25) puts them at 1, 0 and 1."""

FIT_TOLERANCE = 0.15
"""Largest distance of a trained grade from its target."""


def synthetic_grades(count: int) -> np.ndarray:
    """The ICDR grades of ``encoded_photographs(count, PHOTOGRAPH_SEED)``."""
    config = SynthConfig(n=count, size=PHOTO_SIZE, seed=PHOTOGRAPH_SEED, difficulty="easy")
    return np.array([generate_fundus(config, index).grade for index in range(count)], "float32")


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def orientation_photographs() -> tuple[bytes, bytes]:
    """The matrix photograph as PNG, upright and turned left: how its EXIF case is stored,
    hence what a decoder ignoring the orientation tag sees."""
    upright = bad_inputs.photograph()
    return _png(upright), _png(np.ascontiguousarray(np.rot90(upright, k=1)))


def trained_model() -> keras.Sequential:
    """The small network (64 px, width 4, no dropout) after 60 full-batch Adam steps on the
    12 synthetic photographs and the two orientations, each grade within `FIT_TOLERANCE` of
    its target."""
    encoded = encoded_photographs(TRAINING_PHOTOGRAPHS, seed=PHOTOGRAPH_SEED)
    images, _ = preprocessed_images([*encoded, *orientation_photographs()], INPUT_SIZE)
    grades = np.concatenate([synthetic_grades(TRAINING_PHOTOGRAPHS), ORIENTATION_GRADES])
    keras.utils.set_random_seed(7)
    model = build("small", input_size=INPUT_SIZE, width=4, dropout_rate=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(images, grades, batch_size=len(images), epochs=60, verbose=0)
    fitted = model.predict(images, verbose=0)[:, 0]
    if np.abs(fitted - grades).max() > FIT_TOLERANCE:
        raise AssertionError(f"the shared model did not fit its grades: {fitted} vs {grades}")
    return model


def fixture_photographs() -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The first three training photographs (grades 4, 0, 3) as JPEG bytes, and their cropped
    images and FOV masks."""
    encoded = encoded_photographs(3, seed=PHOTOGRAPH_SEED)
    images, masks = preprocessed_images(encoded, INPUT_SIZE)
    return encoded, images, masks
