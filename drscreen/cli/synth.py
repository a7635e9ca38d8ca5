"""`drscreen synth`: write the synthetic fundus benchmark (see `drscreen.data.synthetic`).

Example: ``drscreen synth --out=/data/synth --n=2000 --size=512 --seed=0 --workers=8
--contact_sheet=/data/synth/contact_sheet.png``
"""

import pathlib

from absl import app, flags

from drscreen.cli.paths import require_output_folder
from drscreen.data.synthetic import (
    DIFFICULTIES,
    SynthConfig,
    contact_sheet,
    generate_fundus,
    write_dataset,
)
from drscreen.data.synthetic.config import MIN_SIZE

_OUT = flags.DEFINE_string("out", None, "Output folder for the dataset.")
require_output_folder(_OUT)
_N = flags.DEFINE_integer("n", 1000, "Number of images (two eyes per patient).")
_SIZE = flags.DEFINE_integer("size", 512, "Side of the square photographs in pixels.")
_SEED = flags.DEFINE_integer("seed", 0, "Root random seed.")
_DIFFICULTY = flags.DEFINE_string(
    "difficulty", "standard", f"Difficulty preset: one of {sorted(DIFFICULTIES)}."
)
_UNGRADABLE_FRACTION = flags.DEFINE_float(
    "ungradable_fraction",
    None,
    "Share of ungradable photographs (blur, exposure, small pupil, eyelid, cut field, haze, "
    "not a fundus), labelled in trainLabels.csv; default: the preset's (0; screening: 0.2).",
)
_WORKERS = flags.DEFINE_integer("workers", None, "Processes; default os.cpu_count().")
_CONTACT_SHEET = flags.DEFINE_string(
    "contact_sheet", None, "Also write a PNG grid of the first 8 images with masks outlined."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Allow writing into a non-empty --out.")


def _config() -> SynthConfig:
    if _OUT.value is None:
        raise app.UsageError("--out is required")
    if _N.value <= 0:
        raise app.UsageError(f"--n must be a positive number of images, got {_N.value}")
    if _SIZE.value < MIN_SIZE:
        raise app.UsageError(f"--size must be at least {MIN_SIZE} pixels, got {_SIZE.value}")
    if _SEED.value < 0:
        raise app.UsageError(f"--seed must be non-negative, got {_SEED.value}")
    if _DIFFICULTY.value not in DIFFICULTIES:
        raise app.UsageError(
            f"--difficulty {_DIFFICULTY.value!r} is not one of {sorted(DIFFICULTIES)}"
        )
    if _WORKERS.value is not None and _WORKERS.value < 1:
        raise app.UsageError(f"--workers must be at least 1, got {_WORKERS.value}")
    out = pathlib.Path(_OUT.value)
    if out.exists() and not out.is_dir():
        raise app.UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _OVERWRITE.value:
        raise app.UsageError(f"--out {out} is not empty; pass --overwrite to write into it")
    overrides = {}
    if _UNGRADABLE_FRACTION.value is not None:
        if not 0 <= _UNGRADABLE_FRACTION.value <= 1:
            raise app.UsageError(
                f"--ungradable_fraction must be in [0, 1], got {_UNGRADABLE_FRACTION.value}"
            )
        overrides["ungradable_fraction"] = _UNGRADABLE_FRACTION.value
    return SynthConfig.from_preset(
        _DIFFICULTY.value, n=_N.value, size=_SIZE.value, seed=_SEED.value, **overrides
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = _config()
    out = write_dataset(config, _OUT.value, workers=_WORKERS.value)
    print(f"wrote {config.n} images to {out}")
    if _CONTACT_SHEET.value:
        fundi = [generate_fundus(config, i) for i in range(min(8, config.n))]
        path = contact_sheet(fundi, _CONTACT_SHEET.value, columns=4)
        print(f"wrote contact sheet {path}")
