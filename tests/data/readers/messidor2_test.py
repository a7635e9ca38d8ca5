"""Messidor-2 reader: adjudicated grades, ungradable images, left/right examination pairs."""

import pytest

from drscreen.data.readers import read_dataset
from tests.data.readers.builders import build_messidor2

GRADES = (
    "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n"
    "20051020_43808_0100_PP.png,0,0,1\n"
    "20051020_43832_0100_PP.png,2,1,1\n"
    "IM002385.jpg,,,0\n"
    "IM002386.jpg,4.0,1.0,1.0\n"
    "IM002387.jpg,abc,0,1\n"
    "IM002388.jpg,7,0,1\n"
    "IM002389.jpg,1,0,1\n"
)
IMAGES = [
    "20051020_43808_0100_PP.png",
    "20051020_43832_0100_PP.png",
    "IM002385.JPG",
    "IM002386.JPG",
    "IM002387.JPG",
    "IM002388.JPG",
]
PAIRS = "left;right\n20051020_43808_0100_PP.png;20051020_43832_0100_PP.png\n"


def test_reads_gradable_images_with_pairs_and_case_insensitive_names(tmp_path):
    """Pairs give patient and eye; 'IM002386.jpg' finds IM002386.JPG on disk."""
    build_messidor2(tmp_path, GRADES, IMAGES, PAIRS)
    records = read_dataset("messidor2", tmp_path, problems=[])
    assert [(r.image_id, r.grade, r.patient_id, r.eye) for r in records] == [
        ("20051020_43808_0100_PP.png", 0, "20051020_43808_0100_PP", "left"),
        ("20051020_43832_0100_PP.png", 2, "20051020_43808_0100_PP", "right"),
        ("IM002386.jpg", 4, "IM002386.jpg", ""),
    ]
    assert records[2].image_path == str(tmp_path / "IMAGES" / "IM002386.JPG")


def test_reports_ungradable_invalid_and_missing(tmp_path):
    """Ungradable, non-numeric, out-of-range and missing-file rows are problems."""
    build_messidor2(tmp_path, GRADES, IMAGES, None)
    problems = []
    records = read_dataset("messidor2", tmp_path, problems)
    assert all(r.eye == "" and r.patient_id == r.image_id for r in records)
    labels = tmp_path / "messidor_data.csv"
    assert [p.source for p in problems] == [
        f"{labels}:4",
        f"{labels}:6",
        f"{labels}:7",
        str(tmp_path / "IMAGES" / "IM002389.jpg"),
    ]
    assert "ungradable" in problems[0].reason


def test_missing_grades_file_names_expected_path(tmp_path):
    (tmp_path / "IMAGES").mkdir()
    with pytest.raises(FileNotFoundError, match="adjudicated_dr_grade") as error:
        read_dataset("messidor2", tmp_path)
    assert str(tmp_path / "messidor_data.csv") in str(error.value)
