"""The callbacks of a training run: resume, best model, logs, heatmap images, NaN stop.

Keras 3 built-ins do most of the work: `keras.callbacks.BackupAndRestore` (the whole training
state, model and optimizer variables, saved at every epoch end with a double checkpoint so a
kill during a write falls back to the previous one; restored by `fit` with the epoch counter),
`keras.callbacks.TensorBoard` (scalars), `keras.callbacks.CSVLogger` (``history.csv``, appended
across resumes). Ours:

- `BestModelCheckpoint` saves the PLAIN model (not the training wrapper) as ``best.keras``
  when the monitored validation metric improves; the best value survives resumes
  (``best.json``) and the file is replaced atomically.
- `NonFiniteLossStop` raises `NonFiniteLossError` at the first NaN/Inf training loss, and at
  an epoch end whose validation loss or weights are not finite, before the epoch-end backup
  could overwrite the last good checkpoint; the error names the backup only when it exists.
- `HeatmapImages` writes heatmap overlays of a few fixed validation images to TensorBoard
  after every epoch.
- `RandomStateBackup` saves the states of the model's random generators (dropout masks) with
  each backup and sets them back when a stage resumes: `keras.callbacks.BackupAndRestore`
  leaves them out, and a resumed run must draw the masks the uninterrupted run would have.
"""

import json
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.staging import write_atomically
from drscreen.heatmaps import compute
from drscreen.heatmaps.overlay import heatmap_overlay

BACKUP_METADATA = "training_metadata.json"
"""Written by `keras.callbacks.BackupAndRestore` into its directory with each backup."""
RANDOM_STATES = "random_states.json"
"""Written by `RandomStateBackup` into the backup directory."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class NonFiniteLossStop(keras.callbacks.Callback):
    """Stop training with `NonFiniteLossError` before a checkpoint that is not good is kept.

    A checkpoint is good when the weights are finite and so are the training and validation
    losses: the first non-finite training loss stops training at once, and an epoch whose
    validation loss (or any loss logged) or weights are not finite stops it at the epoch end,
    before the backup that follows this callback could save it.

    Parameters
    ----------
    checkpoint_dir:
        The backup directory of `keras.callbacks.BackupAndRestore`; the error names it when it
        holds a checkpoint, and says that none was kept otherwise.
    """

    def __init__(self, checkpoint_dir: str | Path):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(
                f"training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}"
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        losses = {k: float(v) for k, v in (logs or {}).items() if k.endswith("loss")}
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            named = ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))
            self._stop(f"{named} at the end of epoch {epoch + 1}")
        for variable in self.model.weights:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
                self._stop(f"weight {variable.path} became non-finite in epoch {epoch + 1}")

    def _stop(self, what: str) -> None:
        if (self.checkpoint_dir / BACKUP_METADATA).is_file():
            kept = (
                f"The last good checkpoint (end of epoch {self._epoch}) is kept in "
                f"{self.checkpoint_dir}."
            )
        else:
            kept = "No checkpoint was kept: no epoch ended with finite weights and losses."
        raise NonFiniteLossError(
            f"{what}; training stopped. {kept} Lower --learning_rate or --heatmap_weight "
            "(in a new --model_dir), or check the data."
        )


class RandomStateBackup(keras.callbacks.Callback):
    """Keep the model's random generators in step with the stage's backup.

    A layer's ``save_own_variables`` leaves out its `keras.random.SeedGenerator` state, so
    `keras.callbacks.BackupAndRestore` restores weights, optimizer and epoch but not the
    dropout masks to come. Placed before the backup, this callback writes the generator states
    at every epoch end, keeping the last two epochs (a kill between this write and the
    backup's leaves the backup's epoch here too), and sets them back at the first epoch of a
    resumed fit.

    Parameters
    ----------
    backup_dir:
        The backup directory of `keras.callbacks.BackupAndRestore`.

    Raises
    ------
    RuntimeError
        When a fit resumes at an epoch whose states were not saved (a backup from before this
        callback existed): its results would differ from an uninterrupted run.
    """

    KEPT = 2

    def __init__(self, backup_dir: str | Path):
        super().__init__()
        self.path = Path(backup_dir) / RANDOM_STATES
        self._first_epoch = True

    def _states(self) -> list:
        """The model's generator states, in the model's variable order (names of layers may
        differ from one process to the next)."""
        weights = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def _saved(self) -> dict[str, list]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first_epoch = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._first_epoch:
            return
        self._first_epoch = False
        if epoch == 0:
            return
        saved = self._saved().get(str(epoch))
        states = self._states()
        if saved is None or len(saved) != len(states):
            raise RuntimeError(
                f"{self.path} holds no random state for epoch {epoch}, where the backup "
                "resumes: the resumed run would not equal an uninterrupted one; start it again "
                "in a new --model_dir"
            )
        for variable, value in zip(states, saved, strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        saved = self._saved()
        saved[str(epoch + 1)] = [keras.ops.convert_to_numpy(v).tolist() for v in self._states()]
        kept = sorted(saved, key=int)[-self.KEPT :]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps({key: saved[key] for key in kept}) + "\n")


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save `plain_model` to `path` whenever validation metric `monitor` improves.

    Parameters
    ----------
    plain_model:
        The model to save (the wrapper's inner model).
    path:
        Destination ``.keras`` file; its best value is kept beside it in ``best.json``.
    monitor:
        A key of the epoch logs; names containing ``auc`` are maximised, others minimised.
    """

    def __init__(self, plain_model: keras.Model, path: str | Path, monitor: str):
        super().__init__()
        self.plain_model = plain_model
        self.path = Path(path)
        self.monitor = monitor
        self.record_path = self.path.with_suffix(".json")
        self.maximize = "auc" in monitor
        self.best = -math.inf if self.maximize else math.inf

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.record_path.is_file() and self.path.is_file():
            self.best = json.loads(self.record_path.read_text())["value"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(
                f"--checkpoint_monitor={self.monitor!r} is not among the epoch metrics "
                f"{sorted(logs or {})}"
            )
        value = float(value)
        improved = value > self.best if self.maximize else value < self.best
        if not (math.isfinite(value) and improved):
            return
        self.best = value
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.plain_model.save(partial)
        os.replace(partial, self.path)
        record = {"monitor": self.monitor, "value": value, "epoch": epoch + 1}
        self.record_path.write_text(json.dumps(record) + "\n")


class HeatmapImages(keras.callbacks.Callback):
    """Write sensitivity-heatmap overlays of fixed images to TensorBoard after each epoch.

    Parameters
    ----------
    plain_model:
        The model whose heatmaps are drawn.
    images:
        float32 images (N, S, S, 3) in [0, 255].
    fov_masks:
        Their field-of-view masks (N, S, S).
    log_dir:
        TensorBoard directory; images go to its ``heatmaps`` subfolder.
    """

    def __init__(
        self, plain_model: keras.Model, images: np.ndarray, fov_masks: np.ndarray, log_dir: str
    ):
        super().__init__()
        self.plain_model = plain_model
        self.images = images
        self.fov_masks = fov_masks
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "heatmaps"))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        _, heatmaps = compute(self.plain_model, self.images, fov_masks=self.fov_masks)
        overlays = np.stack(
            [
                heatmap_overlay(np.clip(image, 0, 255).astype(np.uint8), np.asarray(h), mask)
                for image, h, mask in zip(self.images, heatmaps, self.fov_masks, strict=True)
            ]
        )
        with self.writer.as_default():
            tf.summary.image(
                "heatmap_overlays", overlays, step=epoch + 1, max_outputs=len(overlays)
            )
        self.writer.flush()


def training_callbacks(
    stage_dir: str | Path,
    plain_model: keras.Model,
    best_path: str | Path,
    monitor: str,
    log_dir: str | Path,
    heatmap_images: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks of one training stage, in the order they must run.

    Parameters
    ----------
    stage_dir:
        Holds the stage's backup (``backup/``) and ``history.csv``.
    plain_model:
        The model saved as `best_path` and drawn in heatmap images.
    best_path, monitor:
        See `BestModelCheckpoint`.
    log_dir:
        TensorBoard directory.
    heatmap_images:
        (images, FOV masks) drawn each epoch; ``None`` draws none.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = stage_dir / "backup"
    callbacks = [
        NonFiniteLossStop(backup_dir),
        RandomStateBackup(backup_dir),
        keras.callbacks.BackupAndRestore(
            str(backup_dir), save_freq="epoch", delete_checkpoint=False, double_checkpoint=True
        ),
        BestModelCheckpoint(plain_model, best_path, monitor),
        keras.callbacks.CSVLogger(str(stage_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False),
    ]
    if heatmap_images is not None:
        callbacks.append(HeatmapImages(plain_model, *heatmap_images, str(log_dir)))
    return callbacks
