"""Resolve ``--model RUN_OR_MODEL`` to a drscreen Keras model, loaded with safe_mode=True.

Shared by every command that takes a model (predict, evaluate, export).

Owns the rule: a ``.keras`` file is loaded as is; a directory is a training run and its
``best.keras`` (written by ``scripts/train.py``) is loaded, and its ``calibration.json`` (when
training could fit one) is the run's referable-DR calibration (`run_calibration`). The model
must be a chain of drscreen layers taking square RGB images to one grade, or export could not
compute its heatmap.
"""

import json
import os

import keras

from drscreen.layers.chain import chain_layers
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


def model_input_size(model: keras.Model) -> int:
    """The side S of the square RGB input (N, S, S, 3) of a drscreen model.

    Raises
    ------
    ValueError
        If the model's input is not a fixed-size square RGB image or its output is not (N, 1).
    TypeError
        If the model is not a chain of drscreen layers (no exportable heatmap).
    """
    chain_layers(model)
    if not model.inputs or len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} must have exactly one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(
            f"model {model.name!r} must take fixed-size square RGB images (N, S, S, 3), "
            f"its input is {shape}"
        )
    output = tuple(model.outputs[0].shape)
    if len(output) != 2 or output[1] != 1:
        raise ValueError(f"model {model.name!r} must output the grade (N, 1), it outputs {output}")
    return int(shape[1])


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
