"""Synthetic benchmark reader: Kaggle layout plus one mask per lesion type."""

from drscreen.data.lesions import LESION_TYPES
from drscreen.data.readers import read_dataset
from tests.data.readers.builders import build_synthetic


def test_attaches_every_lesion_mask_and_reports_incomplete_masks(tmp_path):
    """Images with all masks become records; an image lacking masks is a problem."""
    csv = "image,level\n0_left,0\n0_right,3\n1_left,2\n"
    build_synthetic(
        tmp_path,
        csv,
        ["0_left", "0_right", "1_left"],
        LESION_TYPES,
        masks_for=["0_left", "0_right"],
    )
    problems = []
    records = read_dataset("synthetic", tmp_path, problems)
    assert [(r.image_id, r.grade, r.patient_id, r.eye) for r in records] == [
        ("0_left", 0, "0", "left"),
        ("0_right", 3, "0", "right"),
    ]
    assert records[1].lesion_masks == {
        lesion: str(tmp_path / "masks" / lesion / "0_right.png") for lesion in LESION_TYPES
    }
    assert {r.dataset for r in records} == {"synthetic"}
    assert [p.source for p in problems] == [str(tmp_path / "train" / "1_left.jpeg")]
    assert "lesion mask(s) missing" in problems[0].reason
