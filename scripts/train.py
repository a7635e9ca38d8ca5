"""Train a drscreen model: flags → frozen `TrainConfig` → ``config.json`` → `run(config)`.

    python scripts/train.py --flagfile=configs/quickstart.flags --model_dir=/tmp/qs [--flag=...]

Flags given after ``--flagfile`` override it. Re-running with the same ``--model_dir`` resumes
from its last checkpoint (``--noresume`` refuses instead). Exit status 1 with a clear message
for bad flags or data, or when the loss becomes NaN/Inf (the last good checkpoint is kept).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from drscreen.training import callbacks, config  # noqa: E402
from drscreen.training.run import run  # noqa: E402

_D = config.DataConfig()
_M = config.ModelConfig()
_O = config.OptimizerConfig()
_H = config.HeatmapConfig()
_T = config.TrainConfig(model_dir="unused")

flags.DEFINE_string("model_dir", None, "Run directory (config, checkpoints, logs, metrics).")
flags.DEFINE_enum("data_source", _D.data_source, config.DATA_SOURCES, "Where images come from.")
flags.DEFINE_string("data_dir", _D.data_dir, "Synthetic benchmark or `drscreen prepare` folder.")
flags.DEFINE_integer("synth_n", _D.synth_n, "Synthetic images generated when missing.")
flags.DEFINE_integer("synth_size", _D.synth_size, "Side of the generated synthetic images.")
flags.DEFINE_enum("synth_difficulty", _D.synth_difficulty, config.SYNTH_DIFFICULTIES, "Preset.")
flags.DEFINE_integer("synth_seed", _D.synth_seed, "Seed of the synthetic benchmark.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size.")
flags.DEFINE_boolean("augment", _D.augment, "o_O augmentation of training images.")
flags.DEFINE_boolean("class_rebalancing", _D.class_rebalancing, "o_O decaying class weights.")
flags.DEFINE_boolean("cache", _D.cache, "Cache decoded images in memory.")
flags.DEFINE_float("val_fraction", _D.val_fraction, "Validation share of patients.")
flags.DEFINE_float("test_fraction", _D.test_fraction, "Test share of patients.")
flags.DEFINE_string("model", _M.model, "drscreen.models.build name: small, oO_netA, oO_netB.")
flags.DEFINE_integer("image_size", _M.image_size, "Input size (of the last stage).")
flags.DEFINE_integer("width", _M.width, "Base filters; 0 keeps the model default.")
flags.DEFINE_enum(
    "normalization", _M.normalization, config.NORMALIZATIONS, "In-model input normalisation."
)
flags.DEFINE_list("progressive_sizes", [], "Stage sizes, e.g. 112,224,448; empty: one stage.")
flags.DEFINE_float("learning_rate", _O.learning_rate, "Initial learning rate.")
flags.DEFINE_enum("schedule", _O.schedule, config.SCHEDULES, "Learning-rate schedule.")
flags.DEFINE_float("momentum", _O.momentum, "Nesterov momentum.")
flags.DEFINE_float("l2", _O.l2, "L2 coefficient on kernels.")
flags.DEFINE_float("heatmap_weight", _H.heatmap_weight, "λ of the heatmap penalty (0: off).")
flags.DEFINE_string("heatmap_penalty", _H.heatmap_penalty, "sparsity, total_variation, entropy.")
flags.DEFINE_integer("epochs", _T.epochs, "Epochs per stage.")
flags.DEFINE_integer("steps_per_epoch", _T.steps_per_epoch, "Batches per epoch (0: one pass).")
flags.DEFINE_string("init_from", _T.init_from, "A .keras model to fine-tune.")
flags.DEFINE_boolean("resume", _T.resume, "Resume from the run directory's checkpoint.")
flags.DEFINE_enum("precision", _T.precision, config.PRECISIONS, "Dtype policy.")
flags.DEFINE_enum("distribution", _T.distribution, config.DISTRIBUTIONS, "tf.distribute strategy.")
flags.DEFINE_integer("seed", _T.seed, "Seed of weights, splits and data order.")
flags.DEFINE_enum(
    "checkpoint_monitor", _T.checkpoint_monitor, config.MONITORS, "Selects best.keras."
)
flags.DEFINE_integer(
    "heatmap_images", _T.heatmap_images, "Heatmap overlays per epoch in TensorBoard."
)
flags.DEFINE_integer("verbose", _T.verbose, "0 silent, 1 progress bar, 2 one line per epoch.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def config_from_flags() -> config.TrainConfig:
    """The frozen config for the parsed flags (ValueError naming a bad flag)."""
    try:
        sizes = tuple(int(size) for size in FLAGS.progressive_sizes)
    except ValueError as error:
        raise ValueError(f"--progressive_sizes={FLAGS.progressive_sizes}: {error}") from None
    return config.TrainConfig(
        model_dir=FLAGS.model_dir,
        data=config.DataConfig(
            data_source=FLAGS.data_source,
            data_dir=FLAGS.data_dir,
            synth_n=FLAGS.synth_n,
            synth_size=FLAGS.synth_size,
            synth_difficulty=FLAGS.synth_difficulty,
            synth_seed=FLAGS.synth_seed,
            batch_size=FLAGS.batch_size,
            augment=FLAGS.augment,
            class_rebalancing=FLAGS.class_rebalancing,
            cache=FLAGS.cache,
            val_fraction=FLAGS.val_fraction,
            test_fraction=FLAGS.test_fraction,
        ),
        model=config.ModelConfig(
            model=FLAGS.model,
            image_size=FLAGS.image_size,
            width=FLAGS.width,
            progressive_sizes=sizes,
            normalization=FLAGS.normalization,
        ),
        optimizer=config.OptimizerConfig(
            learning_rate=FLAGS.learning_rate,
            schedule=FLAGS.schedule,
            momentum=FLAGS.momentum,
            l2=FLAGS.l2,
        ),
        heatmap=config.HeatmapConfig(
            heatmap_weight=FLAGS.heatmap_weight, heatmap_penalty=FLAGS.heatmap_penalty
        ),
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        init_from=FLAGS.init_from,
        resume=FLAGS.resume,
        precision=FLAGS.precision,
        distribution=FLAGS.distribution,
        seed=FLAGS.seed,
        checkpoint_monitor=FLAGS.checkpoint_monitor,
        heatmap_images=FLAGS.heatmap_images,
        verbose=FLAGS.verbose,
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        train_config = config_from_flags()
        train_config.check_continues(Path(train_config.model_dir) / "config.json")
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    train_config.write(Path(train_config.model_dir) / "config.json")
    try:
        run(train_config)
    except (ValueError, callbacks.NonFiniteLossError) as error:
        sys.exit(f"train.py: error: {error}")


if __name__ == "__main__":
    app.run(main)
