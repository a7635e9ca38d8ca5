"""`drscreen prepare`: convert a dataset into pre-processed, sharded TFRecords with a manifest.

The output folder is replaced whole when the run succeeds (a folder holding anything but an
earlier `prepare` output is refused); a run that fails leaves it as it was.

    drscreen prepare --dataset=kaggle --data=/data/kaggle --out=/data/kaggle-512 \
        [--size=512] [--shard_size=256] [--strict] [--val_fraction=0.15 --test_fraction=0.15]
        [--seed=0] [--workers=0] [--max_image_pixels=40000000]
"""

import os
import sys

from absl import app, flags

from drscreen.cli.paths import require_output_folder
from drscreen.data.image_io import DEFAULT_MAX_PIXELS
from drscreen.data.prepare import MANIFEST_NAME, PrepareConfig, prepare_dataset
from drscreen.data.readers import DATASET_NAMES

_DATASET = flags.DEFINE_enum("dataset", None, DATASET_NAMES, "Dataset reader to use.")
_DATA = flags.DEFINE_string("data", None, "The dataset's local folder.")
_OUT = flags.DEFINE_string("out", None, "Output folder for shards and manifest.json.")
require_output_folder(_OUT)
_SIZE = flags.DEFINE_integer("size", 512, "Side of the pre-processed square images (px).")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 256, "Images per TFRecord shard.")
_STRICT = flags.DEFINE_boolean("strict", False, "Stop at the first bad input instead of skipping.")
_VAL_FRACTION = flags.DEFINE_float("val_fraction", 0.15, "Share of patients in validation.")
_TEST_FRACTION = flags.DEFINE_float("test_fraction", 0.15, "Share of patients in test.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the patient split and shard order.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Shards processed at once (0: one per core).")
_MAX_IMAGE_PIXELS = flags.DEFINE_integer(
    "max_image_pixels",
    DEFAULT_MAX_PIXELS,
    "Skip images with more pixels than this (read from the header, before decoding).",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for flag in (_DATASET, _DATA, _OUT):
        if not flag.value:
            raise app.UsageError(f"--{flag.name} is required")
    try:
        config = PrepareConfig(
            dataset=_DATASET.value,
            data_dir=_DATA.value,
            out_dir=_OUT.value,
            image_size=_SIZE.value,
            shard_size=_SHARD_SIZE.value,
            strict=_STRICT.value,
            val_fraction=_VAL_FRACTION.value,
            test_fraction=_TEST_FRACTION.value,
            seed=_SEED.value,
            num_workers=_WORKERS.value,
            max_image_pixels=_MAX_IMAGE_PIXELS.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        manifest = prepare_dataset(config)
    except (ValueError, OSError) as error:  # labels, images, a folder in the way, a full disk
        sys.exit(f"drscreen prepare: {error}")
    for skipped in manifest.skipped:
        print(f"skipped {skipped['path']}: {skipped['reason']}", file=sys.stderr)
    counts = ", ".join(f"{name} {split['count']}" for name, split in manifest.splits.items())
    listed = (
        f"; listed in {os.path.join(config.out_dir, MANIFEST_NAME)}" if manifest.skipped else ""
    )
    print(f"wrote {counts} images to {config.out_dir} ({len(manifest.skipped)} skipped{listed})")
