"""The callbacks of a training run: resume, best model, logs, heatmap images, NaN stop.

Keras 3 built-ins do most of the work: `keras.callbacks.BackupAndRestore` (the whole training
state, model and optimizer variables, saved at every epoch end with a double checkpoint so a
kill during a write falls back to the previous one; restored by `fit` with the epoch counter),
`keras.callbacks.TensorBoard` (scalars), `keras.callbacks.CSVLogger` (``history.csv``, appended
across resumes). Ours:

- `BestModelCheckpoint` saves the PLAIN model (not the training wrapper) as ``best.keras``
  when the monitored validation metric improves; the best value survives resumes
  (``best.json``) and the file is replaced atomically.
- `NonFiniteLossStop` raises `NonFiniteLossError` at the first NaN/Inf training loss, before
  the epoch-end backup could overwrite the last good checkpoint with non-finite weights.
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


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class NonFiniteLossStop(keras.callbacks.Callback):
    """Stop training with `NonFiniteLossError` at the first non-finite training loss.

    Parameters
    ----------
    checkpoint_dir:
        Where the last good checkpoint lives, named in the error message.
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
            raise NonFiniteLossError(
                f"training loss became {float(loss)} at epoch {self._epoch + 1}, batch "
                f"{batch + 1}; training stopped. The last good checkpoint (end of epoch "
                f"{self._epoch}) is kept in {self.checkpoint_dir}. Lower --learning_rate or "
                "--heatmap_weight, or check the data."
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
