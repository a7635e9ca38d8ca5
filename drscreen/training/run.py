"""`run(config)`: one training run from a frozen `TrainConfig` to ``metrics.json``.

The o_O recipe, each part a config option: grade regression (MSE), SGD with Nesterov
momentum 0.9 (or Adam), the o_O step schedule (`schedules`), L2 5e-4 on kernels (coupled, in
the loss), decaying class-rebalancing weights (`drscreen.data.pipeline`), progressive resizing
(`progressive`), plus heatmap-aware training (`heatmap_aware`) when λ > 0.

Keras 3 built-ins replace what tensorflow-addons provided to TF2-era ports of o_O:
`keras.optimizers.SGD(nesterov=True)` (Nesterov momentum), `keras.optimizers.schedules.
PiecewiseConstantDecay` (step schedule), `keras.optimizers.LossScaleOptimizer` (loss scaling),
`keras.callbacks.BackupAndRestore` (fault-tolerant resume), `tf.raw_ops.
ImageProjectiveTransformV3` in the augmentation (rotate/transform), and our own
`drscreen.layers.Maxout` (tfa.layers.Maxout) and `RMSPooling2D`.

Run directory (file names owned by `drscreen.models.runs.RunDirectory`; all written here)::

    config.json          the resolved config (a different config in the same directory is
                         refused: only --resume and --verbose may change on resuming)
    splits.json          the patient split as image ids (prepare's for TFRecords), read by
                         drscreen evaluate so that it evaluates exactly the held-out images
    stages/<i>-<S>px/    per stage: backup/ (resume state), history.csv, best.keras, done.json
    logs/<i>-<S>px/      TensorBoard: train/validation scalars, heatmaps/ overlays per epoch
    best.keras           the best PLAIN model of the last stage
    lesions.keras        the lesion student (`drscreen.training.student`), with
                         --student_enabled: trained after the model on pseudo-masks of its
                         --student_teacher_method heatmap; written under another name and
                         renamed, so a killed run leaves none or a whole one (kept on resume)
    calibration.json     referable-DR calibration fitted on the validation split (when it fits)
    metrics.json         the final evaluation of best.keras: `drscreen.evaluation.
                         model_evaluation.evaluate_model` on the test split, thresholds and
                         calibration from the validation split (the student's lesion map a
                         row of its own, ``lesions``), plus a ``run`` section; its
                         curves' points in curves.csv (`drscreen.evaluation.report.write_metrics`)
    model_card.json      what the model is, was trained and validated on, and is for
                         (`drscreen.models.model_card`), written last
"""

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.sources import has_lesion_masks
from drscreen.data.staging import OutOfSpaceError, folder_bytes, is_out_of_space
from drscreen.evaluation.lesion_student import lesion_function
from drscreen.evaluation.model_evaluation import evaluate_model
from drscreen.evaluation.report import json_safe, write_metrics
from drscreen.evaluation.runner import RunnerConfig, heatmap_function, keras_functions
from drscreen.models import build
from drscreen.models.calibration import Calibration
from drscreen.models.lesion_map import LESIONS
from drscreen.models.model_card import write_model_card
from drscreen.models.runs import RunDirectory
from drscreen.training import data as run_data
from drscreen.training.callbacks import BACKUP_METADATA, training_callbacks
from drscreen.training.config import TrainConfig
from drscreen.training.distribution import is_chief, make_strategy, worker_shard, writable_dir
from drscreen.training.heatmap_aware import HeatmapAwareModel
from drscreen.training.mixed_precision import heatmap_seed_scale, set_precision, wrap_optimizer
from drscreen.training.progressive import NEW, REINITIALISED, transfer_weights
from drscreen.training.schedules import learning_rate_schedule
from drscreen.training.student import train_student

FINAL_HEATMAP_METHOD = "sensitivity"
"""The heatmap whose lesion figures the final metrics report (when the data has masks)."""


def _log(message: str) -> None:
    print(f"drscreen.training: {message}", file=sys.stderr, flush=True)


def _backup_epoch(stage_dir: Path) -> int:
    """Epochs completed according to the stage's backup (0 without one)."""
    metadata = stage_dir / "backup" / BACKUP_METADATA
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
        fresh = [t.path for t in transfers if t.action in (REINITIALISED, NEW)]
        _log(
            f"initialised {model.name} at {size} px ({len(model.layers)} layers) from "
            f"{previous.name} at {previous.input_shape[1]} px; fresh: {fresh or 'none'}"
        )
    return model


def _optimizer(config: TrainConfig, rate) -> keras.optimizers.Optimizer:
    """o_O's SGD with Nesterov momentum, or Adam, at learning rate (schedule) ``rate``."""
    if config.optimizer.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    return keras.optimizers.SGD(rate, momentum=config.optimizer.momentum, nesterov=True)


def _heatmap_images(
    config: TrainConfig, splits: run_data.DataSplits, size: int
) -> tuple[np.ndarray, np.ndarray] | None:
    if config.heatmap_images == 0:
        return None
    batches = run_data.evaluation_batches(splits.validation, size, config.heatmap_images)
    batch = next(iter(batches))
    return np.asarray(batch["image"]), np.asarray(batch["mask"])


def train_stage(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    splits: run_data.DataSplits,
    run: RunDirectory,
    index: int,
    size: int,
    previous: keras.Model | None,
) -> Path:
    """Train one stage at `size` px (resuming it when it has a backup); its best model path."""
    name = f"{index}-{size}px"
    stage_dir = run.stage_dir(index, size)
    best_path = stage_dir / RunDirectory.MODEL
    done_path = stage_dir / RunDirectory.STAGE_DONE
    if done_path.is_file() and best_path.is_file():
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
        run_data.pipeline_config(config.data, size, seed, steps, True, shard),
        training=True,
        replayed=done_epochs * steps,
    )
    validation = run_data.batches(
        splits.validation,
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
            evidence_l1=config.model.evidence_l1,
        )
        rate = learning_rate_schedule(
            config.optimizer.schedule, config.optimizer.learning_rate, config.epochs, steps
        )
        wrapper.compile(optimizer=wrap_optimizer(_optimizer(config, rate), policy))
        wrapper.build_for_training(size)
    if done_epochs:
        _log(
            f"resuming stage {name} from epoch {done_epochs} of {config.epochs} (replaying the "
            f"data stream of {done_epochs * steps} batches first, without training on them)"
        )
    else:
        _log(f"training stage {name}: {config.epochs} epochs of {steps} steps, policy {policy}")
    callbacks = training_callbacks(
        stage_dir,
        model,
        best_path,
        config.checkpoint_monitor,
        run.logs_dir(index, size),
        _heatmap_images(config, splits, size),
    )
    with warnings.catch_warnings():
        # A validation set of unknown length (TFRecords, or photographs refused on the way)
        # is read to its end every epoch, which Keras calls running out of data.
        warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
        wrapper.fit(
            train,
            validation_data=validation,
            epochs=config.epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=config.verbose,
            shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a tf.data.Dataset
        )
    if not best_path.is_file():
        raise RuntimeError(
            f"stage {name} produced no {RunDirectory.MODEL}: {config.checkpoint_monitor} was "
            "never finite"
        )
    done_path.write_text(json.dumps({"epochs": config.epochs, "size": size}) + "\n")
    return best_path


def lesion_student(
    config: TrainConfig, model: keras.Model, splits: run_data.DataSplits, run: RunDirectory
) -> keras.Model:
    """The run's lesion student: ``lesions.keras`` when a previous attempt finished it, else
    trained (`drscreen.training.student.train_student`, teacher: ``model``'s
    ``--student_teacher_method`` map) and written whole (saved aside, then renamed)."""
    size = int(model.input_shape[1])
    if run.lesions_file.is_file():
        _log(f"{run.lesions_file} already written; keeping it")
        return run.lesion_model(size)
    teacher = heatmap_function(model, config.student.student_teacher_method)
    student = train_student(
        teacher, splits.train, size, config.student, config.seed, config.verbose
    )
    partial = run.lesions_file.with_name(f".partial-{RunDirectory.LESIONS}")
    student.save(partial)
    os.replace(partial, run.lesions_file)
    _log(f"wrote the lesion student to {run.lesions_file}")
    return student


def final_metrics(
    model: keras.Model,
    splits: run_data.DataSplits,
    batch_size: int,
    progress: bool,
    student: keras.Model | None = None,
) -> dict:
    """`evaluate_model` of the best model: test split, thresholds and calibration from the
    validation split, and the sensitivity heatmap's lesion figures when the test images have
    lesion masks (no deletion/insertion curves: they cost many passes), with the lesion
    student's map as a row of its own (`LESIONS`) when there is one."""
    with_masks = has_lesion_masks(splits.test)
    methods = (FINAL_HEATMAP_METHOD,) if with_masks else ()
    score_fn, heatmap_fns = keras_functions(model, methods)
    if with_masks and student is not None:
        heatmap_fns[LESIONS] = lesion_function(model, student)
    config = RunnerConfig(
        image_size=int(model.input_shape[1]),
        batch_size=batch_size,
        lesion_metrics=with_masks,
        perturbation_images=0,
        progress=progress,
    )
    result = evaluate_model(
        score_fn, splits.test, splits.validation, config, heatmap_fns, label="final evaluation"
    )
    return result.metrics


def _summary(metrics: dict) -> str:
    referable = metrics["screening"].get("referable_dr")
    if referable is None:
        line = f"test image-level metrics skipped: {metrics['screening']['skipped']}"
    else:
        low, high = referable["auc_ci"]
        line = (
            f"test referable-DR AUC {referable['auc']:.3f} [{low:.3f}, {high:.3f}] on "
            f"{metrics['evaluated']['images']} images; any-DR AUC "
            f"{metrics['screening']['any_dr']['auc']:.3f}"
        )
    validation_auc = (metrics["validation"] or {}).get("referable_dr_auc")
    if validation_auc is not None:
        line += f"; validation referable-DR AUC {validation_auc:.3f}"
    for method, section in metrics["methods"].items():
        for target in ("red_lesions", "all_lesions"):
            mass = section.get(f"relevance_mass/{target}")
            if mass is not None:
                line += f"; {method} relevance mass/{target} {mass:.3f}"
    return line


def write_calibration(run: RunDirectory, metrics: dict) -> Path | None:
    """Write the calibration fitted by the final evaluation to the run's ``calibration.json``.

    Returns
    -------
    The file written, or None (and a log line saying why) when no calibration was fitted.
    """
    section = metrics["calibration"]
    if section.get("fitted") is None:
        reason = section.get("reason") or section.get("skipped")
        _log(f"referable-DR calibration not fitted: {reason}")
        return None
    fitted = Calibration.from_dict(section["fitted"])
    return run.write_calibration(fitted, metrics["validation"]["images"])


def run(config: TrainConfig) -> dict:
    """Train (resuming when possible), evaluate the best model and write the run directory.

    Returns
    -------
    The metrics written to ``metrics.json`` (curve points in ``curves.csv``): `final_metrics`
    (test screening metrics with
    thresholds from validation, the referable-DR calibration, also written to
    ``calibration.json`` when it could be fitted, and lesion figures when the data has masks)
    plus the ``run`` section.

    Raises
    ------
    ValueError
        Bad settings, bad data or data not matching the model, or a run directory that holds
        another run, before anything is written to the run directory (synthetic data
        generated into ``RUN_DIR/data`` aside).
    drscreen.training.callbacks.NonFiniteLossError
        The loss became NaN/Inf; the last good checkpoint is kept.
    drscreen.data.staging.OutOfSpaceError
        The disk filled up (saying about how much space one more checkpoint needs); the last
        complete checkpoint is kept, so the same command resumes once there is space.
    """
    strategy = make_strategy(config.distribution)
    run_dir = RunDirectory(writable_dir(config.model_dir, strategy))
    config.check_continues(run_dir.config_file)
    for size in config.model.stage_sizes:  # a model that cannot be built fails here
        _build_model(config, size, None)
    keras.utils.set_random_seed(config.seed)  # weights as if no model had been built before
    splits = run_data.load_splits(config.data, run_dir, config.seed)
    run_data.steps_per_epoch(splits, config.data, config.steps_per_epoch)
    # Every setting is checked: only now is the run directory's record written, so a
    # corrected command is never refused as "other settings".
    config.write(run_dir.config_file)
    if not run_dir.splits_file.is_file():
        splits.splits.write(run_dir.splits_file)
    free = shutil.disk_usage(run_dir.path).free
    try:
        return _train_and_evaluate(config, strategy, run_dir, splits)
    except Exception as error:
        if not is_out_of_space(error, str(run_dir.path)):
            raise
        written = folder_bytes(str(run_dir.path))
        backups = run_dir.path.glob("stages/*/backup")
        checkpoint = max((folder_bytes(str(p)) for p in backups), default=0)
        raise OutOfSpaceError(
            str(run_dir.path),
            written,
            written + checkpoint,
            free,
            "the last complete checkpoint is kept: free some space and run the same command "
            "again to resume",
        ) from error


def _train_and_evaluate(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    run_dir: RunDirectory,
    splits: run_data.DataSplits,
) -> dict:
    """The stages, the final evaluation and the run's last files (see `run`)."""
    previous = keras.saving.load_model(config.init_from) if config.init_from else None
    best_path = None
    for index, size in enumerate(config.model.stage_sizes):
        best_path = train_stage(config, strategy, splits, run_dir, index, size, previous)
        previous = keras.saving.load_model(best_path)
    partial = run_dir.model_file.with_name(f".{RunDirectory.MODEL}.partial")
    shutil.copyfile(best_path, partial)
    os.replace(partial, run_dir.model_file)
    keras.config.set_dtype_policy("float32")
    student = None
    if config.student.student_enabled:
        student = lesion_student(config, previous, splits, run_dir)
    metrics = final_metrics(previous, splits, config.data.batch_size, config.verbose > 0, student)
    metrics["run"] = {
        "model_dir": str(run_dir.path),
        "stages": list(config.model.stage_sizes),
        "epochs_per_stage": config.epochs,
        "heatmap_weight": config.heatmap.heatmap_weight,
        "heatmap_penalty": config.heatmap.heatmap_penalty,
        "lesion_student": RunDirectory.LESIONS if student is not None else None,
        "chief": is_chief(strategy),
    }
    metrics = json_safe(metrics)
    write_calibration(run_dir, metrics)
    summary = write_metrics(str(run_dir.metrics_file), str(run_dir.curves_file), metrics)
    write_model_card(run_dir)
    print(f"drscreen.training: {_summary(metrics)}", flush=True)
    return summary
