"""Reader for Messidor-2 with the adjudicated grades of Krause et al. (2018).

Layout. Verified against public loaders: ADCIS ships the 1,748 photographs in ``IMAGES/`` with
``messidor-2.csv``, which pairs the two eyes of each examination as semicolon-separated
``left;right`` image names and carries no grades; the grades come from the Kaggle set
``google-brain/messidor2-dr-grades`` as ``messidor_data.csv`` with header
``image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable``, where ``image_id`` is
the file name with its extension and ungradable images have ``adjudicated_gradable = 0`` and
no grade. Ungradable images are reported as problems, not records.

Assumed, not verified: file extensions may differ in case between the grade file and the
folder (``IM00xxxx.jpg`` listed,
``IM00xxxx.JPG`` on disk), so names are matched exactly
first and then ignoring case. With ``messidor-2.csv`` present, both images of an examination
share ``patient_id`` (the stem of its left image) and get their eye; without it, or for an
image it does not list, the image is its own patient and the eye is unknown.
"""

from pathlib import Path

from drscreen.data.readers.common import Problem, parse_grade, read_csv_rows, require
from drscreen.data.records import FundusRecord

GRADES = "messidor_data.csv"
PAIRS = "messidor-2.csv"
IMAGES = "IMAGES"
LAYOUT = """\
  <data_dir>/messidor_data.csv    image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable
  <data_dir>/IMAGES/<image_id>
  <data_dir>/messidor-2.csv       left;right   (optional: the examinations' eye pairs)"""


def _examinations(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Lower-cased image name -> ``(patient_id, eye)`` from ``messidor-2.csv``, if present."""
    if not (data_dir / PAIRS).exists():
        return {}
    pairs = {}
    for row in read_csv_rows(data_dir / PAIRS, ("left", "right"), delimiter=";"):
        left, right = row.values["left"], row.values["right"]
        patient = Path(left).stem
        pairs[left.lower()] = (patient, "left")
        pairs[right.lower()] = (patient, "right")
    return pairs


def _is_one(text: str) -> bool:
    try:
        return float(text) == 1
    except ValueError:
        return False


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the gradable images with their adjudicated ICDR grades."""
    grades = require(data_dir / GRADES, "messidor2", LAYOUT)
    images = require(data_dir / IMAGES, "messidor2", LAYOUT)
    on_disk = {path.name.lower(): path for path in images.iterdir()}
    examinations = _examinations(data_dir)
    columns = ("image_id", "adjudicated_dr_grade", "adjudicated_gradable")
    records = []
    for row in read_csv_rows(grades, columns):
        image_id = row.values.get("image_id", "")
        if not image_id:
            problems.append(Problem(row.source, "missing image_id"))
            continue
        gradable = row.values.get("adjudicated_gradable", "")
        if not _is_one(gradable):
            reason = f"{image_id}: ungradable (adjudicated_gradable={gradable!r})"
            problems.append(Problem(row.source, reason))
            continue
        try:
            grade = parse_grade(row.values.get("adjudicated_dr_grade"))
        except ValueError as error:
            problems.append(Problem(row.source, f"{image_id}: {error}"))
            continue
        path = images / image_id
        if not path.is_file():
            path = on_disk.get(image_id.lower(), path)
        if not path.is_file():
            problems.append(Problem(str(path), f"image listed in {grades} does not exist"))
            continue
        patient, eye = examinations.get(image_id.lower(), (image_id, ""))
        records.append(FundusRecord(image_id, str(path), grade, patient, eye, dataset="messidor2"))
    return records
