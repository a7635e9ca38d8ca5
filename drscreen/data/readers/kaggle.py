"""Reader for Kaggle Diabetic Retinopathy Detection 2015 (EyePACS).

Layout (verified against public loaders of the competition data): ``trainLabels.csv`` with
header ``image,level`` and images ``train/<image>.jpeg``; the labels of the test set released
after the competition, ``retinopathy_solution.csv`` with header ``image,level,Usage``
(``Public``/``Private``) and images ``test/<image>.jpeg``, are read when that file exists.
An optional ``gradable`` column (1/0; the synthetic benchmark's ungradable mix writes one)
becomes `FundusRecord.gradable`.
Image names are ``<patient>_<left|right>`` (e.g. ``10_left``); a name without that suffix
gets ``patient_id = image_id`` and an unknown eye (assumed never to happen in the real data).
"""

from pathlib import Path

from drscreen.data.readers.common import (
    Problem,
    parse_gradable,
    parse_grade,
    read_csv_rows,
    require,
)
from drscreen.data.records import FundusRecord

TRAIN_LABELS = "trainLabels.csv"
TEST_LABELS = "retinopathy_solution.csv"
LAYOUT = """\
  <data_dir>/trainLabels.csv              image,level
  <data_dir>/train/<image>.jpeg
  <data_dir>/retinopathy_solution.csv     image,level,Usage   (optional: released test labels)
  <data_dir>/test/<image>.jpeg            (with retinopathy_solution.csv)"""


def patient_and_eye(image: str) -> tuple[str, str]:
    """Split ``"<patient>_<left|right>"`` into ``(patient, eye)``; ``(image, "")`` otherwise."""
    patient, _, eye = image.rpartition("_")
    if patient and eye in ("left", "right"):
        return patient, eye
    return image, ""


def read_labelled_folder(
    labels: Path, images: Path, dataset: str, problems: list[Problem]
) -> list[FundusRecord]:
    """Records of a Kaggle-format label file (``image,level``, optionally ``gradable``) over
    ``images/<image>.jpeg``."""
    records = []
    for row in read_csv_rows(labels, ("image", "level")):
        image = row.values.get("image", "")
        if not image:
            problems.append(Problem(row.source, "missing image name"))
            continue
        try:
            grade = parse_grade(row.values.get("level"))
            gradable = parse_gradable(row.values.get("gradable"))
        except ValueError as error:
            problems.append(Problem(row.source, f"{image}: {error}"))
            continue
        path = images / f"{image}.jpeg"
        if not path.is_file():
            problems.append(Problem(str(path), f"image listed in {labels} does not exist"))
            continue
        patient, eye = patient_and_eye(image)
        records.append(
            FundusRecord(image, str(path), grade, patient, eye, dataset=dataset, gradable=gradable)
        )
    return records


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the training set and, when its labels are present, the released test set."""
    labels = require(data_dir / TRAIN_LABELS, "kaggle", LAYOUT)
    records = read_labelled_folder(labels, data_dir / "train", "kaggle", problems)
    if (data_dir / TEST_LABELS).exists():
        records += read_labelled_folder(
            data_dir / TEST_LABELS, data_dir / "test", "kaggle", problems
        )
    return records


def read_split(data_dir: Path) -> dict[str, str]:
    """``image_id -> "train" | "test"`` from the two label files."""
    files = [(require(data_dir / TRAIN_LABELS, "kaggle", LAYOUT), "train")]
    if (data_dir / TEST_LABELS).exists():
        files.append((data_dir / TEST_LABELS, "test"))
    return {
        row.values["image"]: part for path, part in files for row in read_csv_rows(path, ("image",))
    }
