"""`run(config)`: one training run from a frozen `TrainConfig` to ``metrics.json``.

The o_O recipe, each part a config option: grade regression (MSE), SGD with Nesterov
momentum 0.9, the o_O step schedule (`schedules`), L2 5e-4 on kernels (coupled, in the loss),
decaying class-rebalancing weights (`drscreen.data.pipeline`), progressive resizing
(`progressive`), plus heatmap-aware training (`heatmap_aware`) when λ > 0.

Keras 3 built-ins replace what tensorflow-addons provided to TF2-era ports of o_O:
`keras.optimizers.SGD(nesterov=True)` (Nesterov momentum), `keras.optimizers.schedules.
PiecewiseConstantDecay` (step schedule), `keras.optimizers.LossScaleOptimizer` (loss scaling),
`keras.callbacks.BackupAndRestore` (fault-tolerant resume), `tf.raw_ops.
ImageProjectiveTransformV3` in the augmentation (rotate/transform), and our own
`drscreen.layers.Maxout` (tfa.layers.Maxout) and `RMSPooling2D`.

Run directory::

    config.json          the resolved config (written by scripts/train.py)
    stages/<i>-<S>px/    per stage: backup/ (resume state), history.csv, best.keras, done.json
    logs/<i>-<S>px/      TensorBoard: train/validation scalars, heatmaps/ overlays per epoch
    best.keras           the best PLAIN model of the last stage
    calibration.json     referable-DR calibration fitted on the validation split (when it fits)
    metrics.json         final validation and test metrics
"""

import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from drscreen.models import build
from drscreen.models.calibration import CALIBRATION_FILE
from drscreen.training import data as run_data
from drscreen.training.callbacks import training_callbacks
from drscreen.training.config import TrainConfig
from drscreen.training.distribution import is_chief, make_strategy, worker_shard, writable_dir
from drscreen.training.evaluate import final_metrics
from drscreen.training.heatmap_aware import HeatmapAwareModel
from drscreen.training.mixed_precision import heatmap_seed_scale, set_precision, wrap_optimizer
from drscreen.training.progressive import REINITIALISED, transfer_weights
from drscreen.training.schedules import learning_rate_schedule

DONE_FILE = "done.json"
BEST_FILE = "best.keras"
METRICS_FILE = "metrics.json"


def _log(message: str) -> None:
    print(f"drscreen.training: {message}", file=sys.stderr, flush=True)


def _backup_epoch(stage_dir: Path) -> int:
    """Epochs completed according to the stage's backup (0 without one)."""
    metadata = stage_dir / "backup" / "training_metadata.json"
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


def _build_model(config: TrainConfig, size: int, previous: keras.Model | None) -> keras.Model:
    model = build(
        config.model.model,
        input_size=size,
        width=config.model.width or None,
        normalization=config.model.normalization,
    )
    if previous is not None:
        transfers = transfer_weights(previous, model)
        fresh = [t.path for t in transfers if t.action == REINITIALISED]
        _log(
            f"initialised {model.name} at {size} px from {previous.name}; fresh: {fresh or 'none'}"
        )
    return model


def _heatmap_images(
    config: TrainConfig, splits: run_data.DataSplits, size: int
) -> tuple[np.ndarray, np.ndarray] | None:
    if config.heatmap_images == 0:
        return None
    batches = run_data.evaluation_batches(
        splits.validation, "validation", size, config.heatmap_images
    )
    batch = next(iter(batches))
    return np.asarray(batch["image"]), np.asarray(batch["mask"])


def train_stage(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    splits: run_data.DataSplits,
    out_dir: Path,
    index: int,
    size: int,
    previous: keras.Model | None,
) -> Path:
    """Train one stage at `size` px (resuming it when it has a backup); its best model path."""
    name = f"{index}-{size}px"
    stage_dir = out_dir / "stages" / name
    best_path = stage_dir / BEST_FILE
    if (stage_dir / DONE_FILE).is_file() and best_path.is_file():
        _log(f"stage {name} already done; skipping it")
        return best_path
    done_epochs = _backup_epoch(stage_dir)
    if done_epochs and not config.resume:
        raise ValueError(
            f"{stage_dir / 'backup'} holds a checkpoint at epoch {done_epochs}; pass --resume "
            "to continue it or choose a new --model_dir"
        )
    steps = run_data.steps_per_epoch(splits, config.data, config.steps_per_epoch)
    shard = worker_shard(strategy)
    seed = config.seed + index
    train = run_data.batches(
        splits.train,
        "train",
        run_data.pipeline_config(config.data, size, seed, steps, True, shard),
        training=True,
    )
    validation = run_data.batches(
        splits.validation,
        "validation",
        run_data.pipeline_config(config.data, size, seed, None, False, shard),
        training=False,
    )
    policy = set_precision(config.precision)
    with strategy.scope():
        model = _build_model(config, size, previous)
        run_data.check_matches_model(train, model, "training")
        run_data.check_matches_model(validation, model, "validation")
        wrapper = HeatmapAwareModel(
            model,
            heatmap_weight=config.heatmap.heatmap_weight,
            penalty=config.heatmap.heatmap_penalty,
            l2=config.optimizer.l2,
            seed_scale=heatmap_seed_scale(policy),
        )
        rate = learning_rate_schedule(
            config.optimizer.schedule, config.optimizer.learning_rate, config.epochs, steps
        )
        sgd = keras.optimizers.SGD(rate, momentum=config.optimizer.momentum, nesterov=True)
        wrapper.compile(optimizer=wrap_optimizer(sgd, policy))
        wrapper.build_for_training(size)
    if done_epochs:
        _log(f"resuming stage {name} from epoch {done_epochs} of {config.epochs}")
    else:
        _log(f"training stage {name}: {config.epochs} epochs of {steps} steps, policy {policy}")
    callbacks = training_callbacks(
        stage_dir,
        model,
        best_path,
        config.checkpoint_monitor,
        out_dir / "logs" / name,
        _heatmap_images(config, splits, size),
    )
    wrapper.fit(
        train,
        validation_data=validation,
        epochs=config.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=config.verbose,
    )
    if not best_path.is_file():
        raise RuntimeError(
            f"stage {name} produced no {BEST_FILE}: {config.checkpoint_monitor} was never finite"
        )
    (stage_dir / DONE_FILE).write_text(json.dumps({"epochs": config.epochs, "size": size}) + "\n")
    return best_path


def _summary(metrics: dict) -> str:
    test = metrics["test"]
    low, high = test["referable_auc_ci"]
    line = (
        f"test referable-DR AUC {test['referable_auc']:.3f} [{low:.3f}, {high:.3f}] on "
        f"{test['images']} images; any-DR AUC {test['any_dr_auc']:.3f}; validation "
        f"referable-DR AUC {metrics['validation']['referable_auc']:.3f}"
    )
    if "heatmap" in test:
        line += f"; heatmap mass in lesions {test['heatmap']['relevance_mass_in_lesions']:.3f}"
    return line


def write_calibration(out_dir: Path, metrics: dict) -> Path | None:
    """Write the calibration fitted by `final_metrics` to ``out_dir/calibration.json``.

    Returns
    -------
    The file written, or None (and a log line saying why) when no calibration was fitted.
    """
    fitted = metrics["calibration"]["fitted"]
    if fitted is None:
        _log(f"referable-DR calibration not fitted: {metrics['calibration']['reason']}")
        return None
    path = out_dir / CALIBRATION_FILE
    calibration = {**fitted, "fitted_on": "validation", "images": metrics["validation"]["images"]}
    path.write_text(json.dumps(calibration, indent=2) + "\n")
    return path


def run(config: TrainConfig) -> dict:
    """Train (resuming when possible), evaluate the best model and write ``metrics.json``.

    Returns
    -------
    The metrics written to ``metrics.json`` (validation and test screening metrics; the
    referable-DR calibration, also written to ``calibration.json`` when it could be fitted;
    heatmap mass inside lesion masks when the data has them).

    Raises
    ------
    ValueError
        Bad data or data not matching the model, before training starts.
    drscreen.training.callbacks.NonFiniteLossError
        The loss became NaN/Inf; the last good checkpoint is kept.
    """
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.distribution)
    out_dir = writable_dir(config.model_dir, strategy)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = run_data.load_splits(config.data, out_dir, config.seed)
    previous = keras.saving.load_model(config.init_from) if config.init_from else None
    best_path = None
    for index, size in enumerate(config.model.stage_sizes):
        best_path = train_stage(config, strategy, splits, out_dir, index, size, previous)
        previous = keras.saving.load_model(best_path)
    shutil.copyfile(best_path, out_dir / BEST_FILE)
    keras.config.set_dtype_policy("float32")
    metrics = final_metrics(previous, splits.validation, splits.test, config.data.batch_size)
    metrics["run"] = {
        "model_dir": str(out_dir),
        "stages": list(config.model.stage_sizes),
        "epochs_per_stage": config.epochs,
        "heatmap_weight": config.heatmap.heatmap_weight,
        "heatmap_penalty": config.heatmap.heatmap_penalty,
        "chief": is_chief(strategy),
    }
    write_calibration(out_dir, metrics)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"drscreen.training: {_summary(metrics)}", flush=True)
    return metrics
