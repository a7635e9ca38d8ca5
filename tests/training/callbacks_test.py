"""Resume, best-model and NaN-stop behaviour of the training callbacks on a plain Keras model."""

import csv
import json

import keras
import numpy as np
import pytest

from drscreen.training import callbacks


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), loss="mse")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(16, dtype=np.float32).reshape(8, 2) / 16
    return x, x.sum(axis=1)


class _Interrupt(keras.callbacks.Callback):
    """Simulates a kill during epoch `at` (0-based), after the previous epoch's backup."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def _fit(model, tmp_path, epochs, extra=(), poison=False, first=()):
    x, y = _data()
    if poison:
        y = np.where(np.arange(len(y)) == 5, np.inf, y).astype(np.float32)
    stage = tmp_path / "stage"
    cbs = callbacks.training_callbacks(
        stage, model, tmp_path / "best.keras", "val_loss", tmp_path / "logs"
    )
    return model.fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=4,
        epochs=epochs,
        verbose=0,
        callbacks=[*first, *cbs, *extra],
    )


def test_resume_continues_epoch_and_optimizer_state(tmp_path):
    """After an interruption in epoch 3, a new fit resumes at epoch 3 with the same state."""
    first = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(first, tmp_path, 5, [_Interrupt(2)])
    assert int(first.optimizer.iterations) == 2 * 2
    saved = [v.numpy().copy() for v in first.optimizer.variables]

    resumed = _model()
    restored = []

    class _Probe(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            restored.append((epoch, [v.numpy().copy() for v in resumed.optimizer.variables]))

    history = _fit(resumed, tmp_path, 5, [_Probe()])
    assert restored[0][0] == 2
    for got, want in zip(restored[0][1], saved, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(history.history["loss"]) == 3
    with open(tmp_path / "stage" / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3, 4]


def test_best_model_saved_and_kept_across_resume(tmp_path):
    """best.keras is the plain model at the lowest val_loss; best.json records it."""
    model = _model()
    history = _fit(model, tmp_path, 3)
    record = json.loads((tmp_path / "best.json").read_text())
    losses = history.history["val_loss"]
    assert record["value"] == pytest.approx(min(losses))
    assert record["epoch"] == int(np.argmin(losses)) + 1
    reloaded = keras.saving.load_model(tmp_path / "best.keras")
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    check = callbacks.BestModelCheckpoint(model, tmp_path / "best.keras", "val_loss")
    check.on_train_begin()
    assert check.best == pytest.approx(min(losses))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    """A NaN loss raises a clear error; the backup still holds the last finite weights."""
    model = _model()
    _fit(model, tmp_path, 1)
    with pytest.raises(callbacks.NonFiniteLossError, match="became inf at epoch 2, batch"):
        _fit(model, tmp_path, 4, poison=True)
    restored = _model()
    x, y = _data()
    restored.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "stage" / "backup"))],
    )
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())
    assert int(restored.optimizer.iterations) == 2


def _backup_holds_finite_weights(tmp_path) -> bool:
    restored = _model()
    x, y = _data()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "stage" / "backup"))
    restored.fit(x, y, epochs=1, verbose=0, callbacks=[backup])
    return all(np.all(np.isfinite(w)) for w in restored.get_weights())


def test_nan_validation_loss_is_not_kept_as_a_good_checkpoint(tmp_path):
    """A finite training loss with a NaN validation loss (weights diverging) stops training
    at that epoch's end, before its backup; the backup still holds the epoch before."""
    model = _model()
    _fit(model, tmp_path, 1)
    x, y = _data()
    poisoned = np.where(np.arange(len(y)) == 5, np.nan, y).astype(np.float32)
    stage = tmp_path / "stage"
    cbs = callbacks.training_callbacks(
        stage, model, tmp_path / "best.keras", "val_loss", tmp_path / "logs"
    )
    with pytest.raises(callbacks.NonFiniteLossError) as error:
        model.fit(
            x, y, validation_data=(x, poisoned), batch_size=4, epochs=3, verbose=0, callbacks=cbs
        )
    message = str(error.value)
    assert "val_loss nan at the end of epoch 2" in message
    assert f"(end of epoch 1) is kept in {stage / 'backup'}" in message
    assert (stage / "backup").is_dir()
    metadata = json.loads((stage / "backup" / callbacks.BACKUP_METADATA).read_text())
    assert metadata["epoch"] == 1
    assert _backup_holds_finite_weights(tmp_path)


def test_non_finite_weights_are_not_kept_as_a_good_checkpoint(tmp_path):
    """Weights that became infinite (with the epoch's losses already logged finite) stop
    training at the epoch end, naming the weight; the backup keeps the epoch before."""

    class _Overflow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.layers[0].kernel.assign(np.full((2, 1), np.inf, np.float32))

    model = _model()
    with pytest.raises(callbacks.NonFiniteLossError, match="weight .*kernel became non-finite"):
        _fit(model, tmp_path, 3, first=[_Overflow()])
    assert _backup_holds_finite_weights(tmp_path)


def test_no_good_checkpoint_names_no_path(tmp_path):
    """A loss non-finite in the first epoch: the message says nothing was kept and names no
    backup directory that does not exist."""
    model = _model()
    with pytest.raises(callbacks.NonFiniteLossError) as error:
        _fit(model, tmp_path, 2, poison=True)
    message = str(error.value)
    assert "No checkpoint was kept" in message
    assert not (tmp_path / "stage" / "backup" / callbacks.BACKUP_METADATA).exists()
    assert "backup" not in message
