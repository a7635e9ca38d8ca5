"""Reader for the synthetic benchmark written by ``drscreen synth``.

Layout (ours, so exact): the Kaggle training layout (``trainLabels.csv`` with ``image,level``,
``train/<image>.jpeg``) plus one mask ``masks/<lesion_type>/<image>.png`` per image and per
lesion type of `drscreen.data.lesions.LESION_TYPES`. ``lesions.csv`` and ``synth.json`` describe
the generated lesions and the generator's configuration; the reader does not need them. An
image lacking any of its masks is reported as a problem, since the benchmark promises all.
"""

import dataclasses
from pathlib import Path

from drscreen.data.lesions import LESION_TYPES
from drscreen.data.readers.common import Problem, require
from drscreen.data.readers.kaggle import TRAIN_LABELS, read_labelled_folder
from drscreen.data.records import FundusRecord

LAYOUT = """\
  <data_dir>/trainLabels.csv                    image,level
  <data_dir>/train/<image>.jpeg
  <data_dir>/masks/<lesion_type>/<image>.png    one per image and lesion type
  <data_dir>/lesions.csv, <data_dir>/synth.json (not read)"""


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the Kaggle-layout images and attach every lesion type's mask."""
    labels = require(data_dir / TRAIN_LABELS, "synthetic", LAYOUT)
    masks_dir = require(data_dir / "masks", "synthetic", LAYOUT)
    records = []
    for record in read_labelled_folder(labels, data_dir / "train", "synthetic", problems):
        masks = {lesion: masks_dir / lesion / f"{record.image_id}.png" for lesion in LESION_TYPES}
        missing = [str(path) for path in masks.values() if not path.is_file()]
        if missing:
            problems.append(Problem(record.image_path, f"lesion mask(s) missing: {missing}"))
            continue
        lesion_masks = {lesion: str(path) for lesion, path in masks.items()}
        records.append(dataclasses.replace(record, lesion_masks=lesion_masks))
    return records
