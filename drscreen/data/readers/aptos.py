"""Reader for APTOS 2019 Blindness Detection (Kaggle).

Layout (verified against the competition's data description and public loaders):
``train.csv`` with header ``id_code,diagnosis`` and images ``train_images/<id_code>.png``.
``test.csv`` carries no labels and is not read. APTOS publishes no patient or eye information,
so each image is its own patient and the eye is unknown.
"""

from pathlib import Path

from drscreen.data.readers.common import Problem, parse_grade, read_csv_rows, require
from drscreen.data.records import FundusRecord

LABELS = "train.csv"
LAYOUT = """\
  <data_dir>/train.csv                    id_code,diagnosis
  <data_dir>/train_images/<id_code>.png"""


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the labelled training set."""
    labels = require(data_dir / LABELS, "aptos", LAYOUT)
    records = []
    for row in read_csv_rows(labels, ("id_code", "diagnosis")):
        id_code = row.values.get("id_code", "")
        if not id_code:
            problems.append(Problem(row.source, "missing id_code"))
            continue
        try:
            grade = parse_grade(row.values.get("diagnosis"))
        except ValueError as error:
            problems.append(Problem(row.source, f"{id_code}: {error}"))
            continue
        path = data_dir / "train_images" / f"{id_code}.png"
        if not path.is_file():
            problems.append(Problem(str(path), f"image listed in {labels} does not exist"))
            continue
        records.append(FundusRecord(id_code, str(path), grade, id_code, dataset="aptos"))
    return records
