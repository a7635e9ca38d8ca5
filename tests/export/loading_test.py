"""`--model RUN_OR_MODEL` resolution and refusal of models export cannot handle."""

import keras
import pytest

from drscreen import cli
from drscreen.export import load_model, resolve_model_path


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


def test_cli_reports_bad_model_as_usage_error(tmp_path, capsys):
    """`drscreen export --model=<missing>` is a usage error naming the path."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", f"--model={tmp_path}/x", f"--out={tmp_path}/o"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "no such file" in error and f"{tmp_path}/x" in error
    assert not (tmp_path / "o").exists()
