"""Reader for IDRiD, the Indian Diabetic Retinopathy Image Dataset (ISBI 2018 challenge).

Layout (verified against public loaders and dataset descriptions), under the dataset root:

- Disease grading: ``B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training
  Labels.csv`` (and ``b. IDRiD_Disease Grading_Testing Labels.csv``) with header
  ``Image name,Retinopathy grade,Risk of macular edema `` (note the trailing space; the training
  file also carries empty padding columns), over ``B. Disease Grading/1. Original Images/
  {a. Training Set,b. Testing Set}/<Image name>.jpg``. Both sets number their images from
  ``IDRiD_001``, so the names collide across sets.
- Segmentation: ``A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/
  IDRiD_NN.jpg`` (01-54 training, 55-81 testing) with masks ``A. Segmentation/2. All
  Segmentation Groundtruths/<set>/<n>. <Folder>/IDRiD_NN_<SUFFIX>.tif`` for ``1. Microaneurysms``
  (MA), ``2. Haemorrhages`` (HE), ``3. Hard Exudates`` (EX), ``4. Soft Exudates`` (SE); ``5. Optic
  Disc`` is anatomy, not a lesion, and is skipped. IDRiD ships no mask for a lesion type absent
  from an image (e.g. soft exudates in about half the images), so a lesion type missing from a
  segmentation record's ``lesion_masks`` means "absent", not "unknown".

Records. Because names collide, ``image_id`` is ``"<part>-<set>-<name>"``, e.g.
``"grading-train-IDRiD_001"`` or ``"segmentation-test-IDRiD_55"``. Segmentation images carry
no grade (``None``): their numbering is unrelated to the grading set's, so no grade is
guessed. IDRiD gives no patient or eye, so each image is its own patient and the eye is
unknown. Either part may be absent; the grading testing labels are optional.
"""

from pathlib import Path

from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, MICROANEURYSM, SOFT_EXUDATE
from drscreen.data.readers.common import Problem, parse_grade, read_csv_rows, require
from drscreen.data.records import FundusRecord

GRADING = Path("B. Disease Grading")
SEGMENTATION = Path("A. Segmentation")
SETS = {"train": "a. Training Set", "test": "b. Testing Set"}
GRADING_LABELS = {
    "train": "a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
}
LESION_FOLDERS = {
    MICROANEURYSM: ("1. Microaneurysms", "MA"),
    HEMORRHAGE: ("2. Haemorrhages", "HE"),
    HARD_EXUDATE: ("3. Hard Exudates", "EX"),
    SOFT_EXUDATE: ("4. Soft Exudates", "SE"),
}
LAYOUT = """\
  <data_dir>/B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv
      Image name,Retinopathy grade,Risk of macular edema
  <data_dir>/B. Disease Grading/2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv
      (optional)
  <data_dir>/B. Disease Grading/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_001.jpg
  <data_dir>/A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_01.jpg
  <data_dir>/A. Segmentation/2. All Segmentation Groundtruths/{a. Training Set,b. Testing Set}/
      1. Microaneurysms/IDRiD_01_MA.tif, 2. Haemorrhages/..._HE.tif,
      3. Hard Exudates/..._EX.tif, 4. Soft Exudates/..._SE.tif
  (at least one of 'A. Segmentation' and 'B. Disease Grading')"""


def _record(part: str, split: str, name: str, path: Path, **fields) -> FundusRecord:
    image_id = f"{part}-{split}-{name}"
    return FundusRecord(image_id, str(path), patient_id=image_id, dataset="idrid", **fields)


def _read_grading(root: Path, problems: list[Problem]) -> list[FundusRecord]:
    records = []
    for split, label_name in GRADING_LABELS.items():
        labels = root / GRADING / "2. Groundtruths" / label_name
        if split == "test" and not labels.exists():
            continue
        require(labels, "idrid", LAYOUT)
        images = root / GRADING / "1. Original Images" / SETS[split]
        for row in read_csv_rows(labels, ("Image name", "Retinopathy grade")):
            name = row.values.get("Image name", "")
            if not name:
                problems.append(Problem(row.source, "missing image name"))
                continue
            try:
                grade = parse_grade(row.values.get("Retinopathy grade"))
            except ValueError as error:
                problems.append(Problem(row.source, f"{name}: {error}"))
                continue
            path = images / f"{name}.jpg"
            if not path.is_file():
                problems.append(Problem(str(path), f"image listed in {labels} does not exist"))
                continue
            records.append(_record("grading", split, name, path, grade=grade))
    return records


def _read_segmentation(root: Path) -> list[FundusRecord]:
    records = []
    for split, folder in SETS.items():
        images = root / SEGMENTATION / "1. Original Images" / folder
        masks = root / SEGMENTATION / "2. All Segmentation Groundtruths" / folder
        for path in sorted(images.glob("*.jpg")):
            lesion_masks = {
                lesion: str(mask)
                for lesion, (subfolder, suffix) in LESION_FOLDERS.items()
                if (mask := masks / subfolder / f"{path.stem}_{suffix}.tif").is_file()
            }
            records.append(
                _record(
                    "segmentation", split, path.stem, path, grade=None, lesion_masks=lesion_masks
                )
            )
    return records


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the graded images and the segmentation images with their lesion masks."""
    if not (data_dir / GRADING).is_dir() and not (data_dir / SEGMENTATION).is_dir():
        require(data_dir / GRADING, "idrid", LAYOUT)
    records = []
    if (data_dir / GRADING).is_dir():
        records += _read_grading(data_dir, problems)
    if (data_dir / SEGMENTATION).is_dir():
        records += _read_segmentation(data_dir)
    return records


def read_split(data_dir: Path) -> dict[str, str]:
    """``image_id -> "train" | "test"``: IDRiD's own training and testing sets."""
    return {record.image_id: record.image_id.split("-")[1] for record in read(data_dir, [])}
