"""Resolve ``--model RUN_OR_MODEL`` to a drscreen Keras model, loaded with safe_mode=True.

Owns the rule: a ``.keras`` file is loaded as is; a directory is a training run and its
``best.keras`` (written by ``scripts/train.py``) is loaded, and its ``calibration.json`` (when
training could fit one) is the run's referable-DR calibration (`run_calibration`). The model
must be a chain of drscreen layers taking square RGB images to one grade, or export could not
compute its heatmap. Must not export.
"""

import json
import os

import keras

from drscreen.export.signatures import model_input_size
from drscreen.models.calibration import CALIBRATION_FILE, Calibration

RUN_MODEL_FILE = "best.keras"


def resolve_model_path(run_or_model: str) -> str:
    """The ``.keras`` file that ``run_or_model`` names (a run directory or a model file).

    Raises
    ------
    FileNotFoundError
        If the path does not exist, or a run directory holds no ``best.keras``.
    ValueError
        If the file is not a ``.keras`` model.
    """
    if not os.path.exists(run_or_model):
        raise FileNotFoundError(f"model {run_or_model!r}: no such file or run directory")
    if os.path.isdir(run_or_model):
        path = os.path.join(run_or_model, RUN_MODEL_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"model {run_or_model!r}: a run directory must hold {RUN_MODEL_FILE} "
                "(written by scripts/train.py)"
            )
        return path
    if not run_or_model.endswith(".keras"):
        raise ValueError(f"model {run_or_model!r}: expected a .keras file or a run directory")
    return run_or_model


def load_model(run_or_model: str) -> keras.Model:
    """Load the drscreen model of a run directory or ``.keras`` file (safe_mode=True).

    Raises
    ------
    FileNotFoundError, ValueError
        As `resolve_model_path`; ValueError also when the file cannot be deserialised
        safely or is not a drscreen screening model (with the reason).
    """
    path = resolve_model_path(run_or_model)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as error:
        raise ValueError(f"model {path!r} could not be loaded safely: {error}") from error
    try:
        model_input_size(model)
    except (TypeError, ValueError) as error:
        raise ValueError(f"model {path!r} is not a drscreen screening model: {error}") from error
    return model


def run_calibration(run_or_model: str) -> tuple[Calibration, str] | None:
    """The referable-DR calibration of a run directory and the file it came from.

    Returns
    -------
    ``(calibration, path of calibration.json)``; None for a ``.keras`` file or a run
    directory without ``calibration.json``.

    Raises
    ------
    ValueError
        If ``calibration.json`` is not valid JSON or holds no valid midpoint and scale.
    """
    if not os.path.isdir(run_or_model):
        return None
    path = os.path.join(run_or_model, CALIBRATION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            values = json.load(f)
        if not isinstance(values, dict):
            raise ValueError("expected a JSON object")
        return Calibration.from_dict(values), path
    except ValueError as error:
        raise ValueError(f"calibration {path!r} is invalid: {error}") from error
