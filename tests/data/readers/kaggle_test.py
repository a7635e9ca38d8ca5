"""Kaggle DR 2015 reader on a fixture in the competition's exact layout."""

import pytest

from drscreen.data.readers import DatasetProblemsError, official_split, read_dataset
from drscreen.data.readers.kaggle import patient_and_eye
from tests.data.readers.builders import build_kaggle

TRAIN_CSV = (
    "image,level\n10_left,0\n10_right,2\n2_left,4\n3_left,\n3_right,abc\n4_left,7\n5_left,1\n"
)
TRAIN_IMAGES = ["10_left", "10_right", "2_left", "3_left", "3_right", "4_left"]


def test_reads_records_in_natural_order_with_patient_and_eye(tmp_path):
    """Valid rows become records sorted 2 < 10, patient and eye parsed from the name."""
    build_kaggle(tmp_path, TRAIN_CSV, TRAIN_IMAGES)
    records = read_dataset("kaggle", tmp_path, problems=[])
    got = [(r.image_id, r.grade, r.patient_id, r.eye, r.dataset) for r in records]
    assert got == [
        ("2_left", 4, "2", "left", "kaggle"),
        ("10_left", 0, "10", "left", "kaggle"),
        ("10_right", 2, "10", "right", "kaggle"),
    ]
    assert records[0].image_path == str(tmp_path / "train" / "2_left.jpeg")
    assert all(r.lesion_masks == {} for r in records)


def test_reports_missing_label_non_numeric_grade_out_of_range_and_missing_file(tmp_path):
    """Each bad row is skipped with its line (header is line 1) or file and a reason."""
    build_kaggle(tmp_path, TRAIN_CSV, TRAIN_IMAGES)
    problems = []
    read_dataset("kaggle", tmp_path, problems)
    labels = tmp_path / "trainLabels.csv"
    assert [p.source for p in problems] == [
        f"{labels}:5",
        f"{labels}:6",
        f"{labels}:7",
        str(tmp_path / "train" / "5_left.jpeg"),
    ]
    reasons = [p.reason for p in problems]
    assert "missing grade" in reasons[0]
    assert "not a number" in reasons[1]
    assert "'7' is not an ICDR grade" in reasons[2]
    assert "does not exist" in reasons[3]


def test_problems_raise_when_not_collected(tmp_path):
    """Without a problems list nothing is dropped silently."""
    build_kaggle(tmp_path, TRAIN_CSV, TRAIN_IMAGES)
    with pytest.raises(DatasetProblemsError, match="4 listed image") as error:
        read_dataset("kaggle", tmp_path)
    assert len(error.value.problems) == 4


def test_reads_released_test_labels_and_split(tmp_path):
    """retinopathy_solution.csv adds test/<image>.jpeg records; the split follows the files."""
    build_kaggle(
        tmp_path,
        "image,level\n1_left,0\n",
        ["1_left"],
        "image,level,Usage\n1000_right,3,Private\n",
        ("1000_right",),
    )
    records = read_dataset("kaggle", tmp_path)
    assert [(r.image_id, r.grade, r.eye) for r in records] == [
        ("1_left", 0, "left"),
        ("1000_right", 3, "right"),
    ]
    assert records[1].image_path == str(tmp_path / "test" / "1000_right.jpeg")
    assert official_split("kaggle", tmp_path) == {"1_left": "train", "1000_right": "test"}


def test_missing_labels_file_names_expected_path_and_layout(tmp_path):
    """An empty folder: the error names trainLabels.csv's full path and the layout."""
    with pytest.raises(FileNotFoundError) as error:
        read_dataset("kaggle", tmp_path)
    assert str(tmp_path / "trainLabels.csv") in str(error.value)
    assert "train/<image>.jpeg" in str(error.value)


@pytest.mark.parametrize(
    "image, expected",
    [
        ("10_left", ("10", "left")),
        ("7_right", ("7", "right")),
        ("odd", ("odd", "")),
        ("a_b", ("a_b", "")),
    ],
)
def test_patient_and_eye(image, expected):
    assert patient_and_eye(image) == expected
