"""One fundus photograph as every dataset reader returns it."""

import dataclasses
from collections.abc import Mapping

EYES = ("left", "right", "")


@dataclasses.dataclass(frozen=True)
class FundusRecord:
    """A fundus photograph with its image-level label and optional lesion ground truth.

    Attributes
    ----------
    image_id:
        Identifier unique within the dataset (e.g. Kaggle's ``"10_left"``).
    image_path:
        Path to the encoded image (JPEG, PNG, TIFF).
    grade:
        ICDR grade 0-4, or ``None`` where the dataset gives none (e.g. lesion-only sets).
    patient_id:
        Identifier shared by both eyes of a patient (``image_id`` when unknown).
    eye:
        ``"left"``, ``"right"`` or ``""`` when unknown.
    lesion_masks:
        Lesion type (see `drscreen.data.lesions`) to the path of a binary mask image of the
        same size as the photograph. Empty when the dataset has no lesion ground truth.
    dataset:
        Name of the reader that produced the record.
    gradable:
        Whether a grader could grade the photograph (False: retake it); None where the
        dataset does not say.
    """

    image_id: str
    image_path: str
    grade: int | None
    patient_id: str
    eye: str = ""
    lesion_masks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dataset: str = ""
    gradable: bool | None = None

    def __post_init__(self):
        if self.grade is not None and not 0 <= self.grade <= 4:
            raise ValueError(f"{self.image_path}: grade {self.grade} is not an ICDR grade 0-4")
        if self.eye not in EYES:
            raise ValueError(f"{self.image_path}: eye {self.eye!r} is not one of {EYES}")
