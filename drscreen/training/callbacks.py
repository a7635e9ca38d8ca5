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
"""

import json
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from drscreen.heatmaps import compute
from drscreen.heatmaps.overlay import heatmap_overlay

BACKUP_METADATA = "training_metadata.json"
"""Written by `keras.callbacks.BackupAndRestore` into its directory with each backup."""


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
