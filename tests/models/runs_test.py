"""`--model RUN_OR_MODEL` resolution, run calibration, and refusal of unusable models."""

import json
import re
import struct
import zipfile

import keras
import pytest

from drscreen import cli
from drscreen.export import read_description
from drscreen.models import build
from drscreen.models.calibration import Calibration
from drscreen.models.runs import (
    RunDirectory,
    load_model,
    resolve_model_path,
    run_calibration,
    run_lesion_model,
)
from drscreen.models.segmentation import segmentation_net


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """The small network at its smallest input (64 px), width 4."""
    keras.utils.set_random_seed(7)
    return build("small", input_size=64, width=4)


def test_run_directory_resolves_to_best_keras(model, tmp_path):
    """A run directory loads its best.keras, weights intact."""
    model.save(tmp_path / "best.keras")
    assert resolve_model_path(str(tmp_path)) == str(tmp_path / "best.keras")
    loaded = load_model(str(tmp_path))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert (a == b).all()


def test_missing_paths_are_named(tmp_path):
    """A missing path, or a run without best.keras, is a clear FileNotFoundError."""
    with pytest.raises(FileNotFoundError, match="no such file or run directory"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="must hold best.keras"):
        load_model(str(tmp_path))
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="expected a .keras file"):
        load_model(str(tmp_path / "weights.h5"))


def test_non_drscreen_model_is_refused(tmp_path):
    """A plain Keras model has no exportable heatmap: refused with the offending layer."""
    plain = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not a drscreen screening model.*not a drscreen"):
        load_model(str(tmp_path / "plain.keras"))


def test_corrupt_file_is_refused(tmp_path):
    """A .keras file that is not a Keras archive gives a ValueError naming the file."""
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="broken.keras"):
        load_model(str(tmp_path / "broken.keras"))


def _damaged(model: keras.Model, folder, how: str) -> str:
    """``model`` saved, then one byte of its weights flipped (bad CRC) or the file cut."""
    path = folder / f"{how}.keras"
    model.save(path)
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
        return str(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    name_length, extra_length = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("how", ["bad CRC", "truncated"])
def test_damaged_archive_cannot_be_read(model, tmp_path, how):
    """A .keras file with a corrupt member or cut short: "cannot read model FILE: reason"."""
    path = _damaged(model, tmp_path, how)
    with pytest.raises(ValueError, match=f"^cannot read model {re.escape(path)}: "):
        load_model(path)


@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
@pytest.mark.parametrize("how", ["bad CRC", "truncated"])
def test_commands_name_a_damaged_model(model, tmp_path, capsys, command, how):
    """evaluate, export and predict stop with the reason, not a BadZipFile traceback nor
    "not found"."""
    path = _damaged(model, tmp_path, how)
    argv = ["drscreen", command, f"--model={path}", f"--out={tmp_path / 'out'}"]
    argv += {"evaluate": [f"--data={tmp_path}"], "predict": [f"--images={tmp_path}"]}.get(
        command, []
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code not in (0, None)
    error = capsys.readouterr().err + str(exit_info.value.code)
    assert f"cannot read model {path}: " in error
    assert "not found" not in error.lower()


def test_cli_reports_bad_model_as_usage_error(tmp_path, capsys):
    """`drscreen export --model=<missing>` is a usage error naming the path."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", f"--model={tmp_path}/x", f"--out={tmp_path}/o"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "no such file" in error and f"{tmp_path}/x" in error
    assert not (tmp_path / "o").exists()


def test_run_calibration_reads_the_run_directory(tmp_path):
    """calibration.json of a run directory; none for a .keras file or a run without one."""
    assert run_calibration(str(tmp_path)) is None
    (tmp_path / "model.keras").write_bytes(b"")
    assert run_calibration(str(tmp_path / "model.keras")) is None
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"midpoint": 1.1, "scale": 0.6, "fitted_on": "validation"}))
    assert run_calibration(str(tmp_path)) == (Calibration(1.1, 0.6), str(path))
    path.write_text(json.dumps({"midpoint": 1.1, "scale": 0.0}))
    with pytest.raises(ValueError, match="calibration.json.*scale"):
        run_calibration(str(tmp_path))


def _exported_calibration(run_dir, out, *flags: str) -> dict:
    """The calibration section of drscreen_export.json after `drscreen export FLAGS`."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            ["drscreen", "export", f"--model={run_dir}", f"--out={out}", "--format=saved_model"]
            + list(flags)
        )
    assert not exit_info.value.code
    return read_description(str(out / "1"))["calibration"]


def test_export_flags_override_the_run_calibration(model, tmp_path):
    """`drscreen export` applies the calibration rule (`resolve_calibration`) to its flags."""
    model.save(tmp_path / "best.keras")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"midpoint": 1.1, "scale": 0.6}))
    section = _exported_calibration(tmp_path, tmp_path / "b", "--calibration_scale=0.5")
    assert (section["midpoint"], section["scale"]) == (1.1, 0.5)
    assert section["source"] == f"--calibration_scale, {path}"


def test_lesion_model_is_none_without_lesions_keras_and_loads_with_it(tmp_path):
    """A run without lesions.keras (or a .keras file) has no student; with one it loads."""
    assert run_lesion_model(str(tmp_path), 64) is None
    student = segmentation_net(64, 1, width=4)
    student.save(RunDirectory(tmp_path).lesions_file)
    assert run_lesion_model(str(tmp_path / "lesions.keras"), 64) is None
    loaded = run_lesion_model(str(tmp_path), 64)
    for a, b in zip(loaded.get_weights(), student.get_weights(), strict=True):
        assert (a == b).all()
    with pytest.raises(ValueError, match=r"cannot read lesion model .*lesions.keras: .*\(N, 32"):
        run_lesion_model(str(tmp_path), 32)
    segmentation_net(64, 2, width=4).save(RunDirectory(tmp_path).lesions_file)
    with pytest.raises(ValueError, match=r"to \(N, 64, 64, 1\) maps; it maps"):
        run_lesion_model(str(tmp_path), 64)
    RunDirectory(tmp_path).lesions_file.write_bytes(b"cut short")
    with pytest.raises(ValueError, match="^cannot read lesion model .*truncated or corrupt"):
        run_lesion_model(str(tmp_path), 64)
