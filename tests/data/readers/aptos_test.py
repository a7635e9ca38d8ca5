"""APTOS 2019 reader on a fixture in the competition's exact layout."""

import pytest

from drscreen.data.readers import read_dataset
from tests.data.readers.builders import build_aptos


def test_reads_records_and_reports_bad_rows(tmp_path):
    """Valid rows become records (patient = image); bad rows are reported."""
    csv = "id_code,diagnosis\nffa47f6a7bf4,2\n000c1434d8d7,0\n1a1b,\n2b2c,x\n3c3d,7\n4d4e,1\n"
    build_aptos(tmp_path, csv, ["ffa47f6a7bf4", "000c1434d8d7", "1a1b", "2b2c", "3c3d"])
    problems = []
    records = read_dataset("aptos", tmp_path, problems)
    assert [(r.image_id, r.grade, r.patient_id, r.eye) for r in records] == [
        ("000c1434d8d7", 0, "000c1434d8d7", ""),
        ("ffa47f6a7bf4", 2, "ffa47f6a7bf4", ""),
    ]
    assert records[0].image_path == str(tmp_path / "train_images" / "000c1434d8d7.png")
    labels = tmp_path / "train.csv"
    assert [p.source for p in problems] == [
        f"{labels}:4",
        f"{labels}:5",
        f"{labels}:6",
        str(tmp_path / "train_images" / "4d4e.png"),
    ]


def test_missing_labels_file_names_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_images/<id_code>.png") as error:
        read_dataset("aptos", tmp_path)
    assert str(tmp_path / "train.csv") in str(error.value)
