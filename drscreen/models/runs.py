"""A training run's directory (`RunDirectory`), and ``--model RUN_OR_MODEL`` resolution.

`RunDirectory` owns the file names of a run, so no other module spells them: ``config.json``
(the resolved training config), ``splits.json`` (the patient split as image ids, read by
evaluation), ``stages/<i>-<S>px/`` (per progressive stage), ``logs/``, ``best.keras`` (the
best plain model), ``lesions.keras`` (the lesion student, when training had one:
`drscreen.models.lesion_map`), ``calibration.json`` (the referable-DR calibration fitted on
validation) and ``metrics.json``. Training (`drscreen.training.run`) writes them all.

Shared by every command that takes a model (predict, evaluate, export): a ``.keras`` file is
loaded as is, a directory is a run and its ``best.keras`` is loaded (with safe_mode=True) and
its ``calibration.json``, when training could fit one, is the run's calibration
(`run_calibration`). The model must be a chain of drscreen layers taking square RGB images to
one grade, or export could not compute its heatmap.
"""

import json
import os
import zipfile
import zlib
from pathlib import Path

import keras

from drscreen.data.splits import SPLITS_FILE
from drscreen.data.staging import write_atomically
from drscreen.layers.chain import chain_layers
from drscreen.models.calibration import Calibration
from drscreen.models.lesion_map import check_lesion_model
from drscreen.models.quality import QualityGate, load_quality_gate


class RunDirectory:
    """The files of one training run, named in one place.

    Parameters
    ----------
    path:
        The run directory (``--model_dir`` of training, ``--model`` of the commands).
    """

    MODEL = "best.keras"
    LESIONS = "lesions.keras"
    CONFIG = "config.json"
    SPLITS = SPLITS_FILE
    CALIBRATION = "calibration.json"
    METRICS = "metrics.json"
    CURVES = "curves.csv"
    QUALITY = "quality.json"
    STAGE_DONE = "done.json"
    DATA = "data"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def model_file(self) -> Path:
        """``best.keras``: the best plain model of the last stage."""
        return self.path / self.MODEL

    @property
    def lesions_file(self) -> Path:
        """``lesions.keras``: the lesion student (only when training had one)."""
        return self.path / self.LESIONS

    @property
    def config_file(self) -> Path:
        """``config.json``: the resolved training config."""
        return self.path / self.CONFIG

    @property
    def splits_file(self) -> Path:
        """``splits.json``: the run's patient split as image ids."""
        return self.path / self.SPLITS

    @property
    def calibration_file(self) -> Path:
        """``calibration.json``: the referable-DR calibration fitted on validation."""
        return self.path / self.CALIBRATION

    @property
    def metrics_file(self) -> Path:
        """``metrics.json``: the final evaluation of ``best.keras``."""
        return self.path / self.METRICS

    @property
    def curves_file(self) -> Path:
        """``curves.csv``: the points of the curves in ``metrics.json``."""
        return self.path / self.CURVES

    @property
    def quality_file(self) -> Path:
        """``quality.json``: the run's own gradability gate (optional)."""
        return self.path / self.QUALITY

    @property
    def synthetic_data_dir(self) -> Path:
        """``data/``: where training generates the synthetic benchmark without --data_dir."""
        return self.path / self.DATA

    def training_data(self) -> tuple[str, str] | None:
        """Where training read its images, from ``config.json``: (folder, reader), the reader
        being "" for a ``drscreen prepare`` folder; None without a readable config."""
        try:
            data = json.loads(self.config_file.read_text())["data"]
            source, folder = data["data_source"], data["data_dir"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if source == "tfrecords":
            return folder, ""
        return folder or str(self.synthetic_data_dir), "synthetic"

    def stage_dir(self, index: int, size: int) -> Path:
        """``stages/<index>-<size>px``: one progressive stage (backup, history, its best model)."""
        return self.path / "stages" / f"{index}-{size}px"

    def logs_dir(self, index: int, size: int) -> Path:
        """``logs/<index>-<size>px``: the stage's TensorBoard logs."""
        return self.path / "logs" / f"{index}-{size}px"

    def calibration(self) -> tuple[Calibration, str] | None:
        """The run's calibration and its file; None when the run has no ``calibration.json``.

        Raises
        ------
        ValueError
            If ``calibration.json`` is not valid JSON or holds no valid midpoint and scale.
        """
        path = self.calibration_file
        if not path.is_file():
            return None
        try:
            values = json.loads(path.read_text())
            if not isinstance(values, dict):
                raise ValueError("expected a JSON object")
            return Calibration.from_dict(values), str(path)
        except ValueError as error:
            raise ValueError(f"calibration {str(path)!r} is invalid: {error}") from error

    def lesion_model(self, input_size: int) -> keras.Model | None:
        """The run's lesion student (safe_mode=True), None when it has no ``lesions.keras``.

        Raises
        ------
        ValueError
            "cannot read lesion model FILE: reason" when the file is truncated, corrupt or
            not safely loadable, or when it does not map the screening model's
            ``input_size`` images to one map of that size.
        """
        path = self.lesions_file
        if not path.is_file():
            return None
        _check_archive(str(path), "lesion model")
        try:
            student = keras.saving.load_model(path, compile=False, safe_mode=True)
            check_lesion_model(student, input_size)
        except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"cannot read lesion model {path}: {error}") from error
        return student

    def write_calibration(self, calibration: Calibration, images: int) -> Path:
        """Write ``calibration.json``: ``calibration`` fitted on ``images`` validation images
        (atomically: a full disk leaves no half-written file)."""
        values = {**calibration.to_dict(), "fitted_on": "validation", "images": images}
        write_atomically(self.calibration_file, json.dumps(values, indent=2) + "\n")
        return self.calibration_file


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
        path = RunDirectory(run_or_model).model_file
        if not path.is_file():
            raise FileNotFoundError(
                f"model {run_or_model!r}: a run directory must hold {RunDirectory.MODEL} "
                "(written by training)"
            )
        return str(path)
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


def _check_archive(path: str, what: str = "model") -> None:
    """Raise ValueError "cannot read {what} PATH: reason" unless ``path`` is a whole zip
    archive (a ``.keras`` file is one) whose every member passes its CRC check."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        raise ValueError(
            f"cannot read {what} {path}: not a complete .keras archive, truncated or corrupt "
            f"({error})"
        ) from error
    if damaged is not None:
        raise ValueError(
            f"cannot read {what} {path}: {damaged} in the archive is corrupt (bad CRC)"
        )


def load_model(run_or_model: str) -> keras.Model:
    """Load the drscreen model of a run directory or ``.keras`` file (safe_mode=True).

    Raises
    ------
    FileNotFoundError, ValueError
        As `resolve_model_path`; ValueError ("cannot read model FILE: reason") also when
        the file is truncated or corrupt or cannot be deserialised safely, or when it is not
        a drscreen screening model (with the reason).
    """
    path = resolve_model_path(run_or_model)
    _check_archive(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read model {path}: {error}") from error
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
    return RunDirectory(run_or_model).calibration()


def run_quality_gate(run_or_model: str) -> tuple[QualityGate, str] | None:
    """The gradability gate of a run directory's ``quality.json`` and its path; None for a
    ``.keras`` file or a run without one (`drscreen.models.quality.resolve_quality_gate`
    then takes the default gate).

    Raises
    ------
    ValueError
        If ``quality.json`` is not a valid gate.
    """
    if not os.path.isdir(run_or_model):
        return None
    path = RunDirectory(run_or_model).quality_file
    return (load_quality_gate(path), str(path)) if path.is_file() else None


def run_lesion_model(run_or_model: str, input_size: int) -> keras.Model | None:
    """The lesion student of a run directory (`RunDirectory.lesion_model`); None for a
    ``.keras`` file or a run without ``lesions.keras`` (the exports' ``lesions`` output is
    then the heatmap itself).

    Raises
    ------
    ValueError
        As `RunDirectory.lesion_model`.
    """
    if not os.path.isdir(run_or_model):
        return None
    return RunDirectory(run_or_model).lesion_model(input_size)
