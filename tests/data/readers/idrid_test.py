"""IDRiD reader: both grading sets (colliding names) and the segmentation part's masks."""

import pytest

from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, MICROANEURYSM, SOFT_EXUDATE
from drscreen.data.readers import official_split, read_dataset
from tests.data.readers.builders import IDRID_TRAIN_LABELS, build_idrid

# As shipped: trailing space in the last header, empty padding columns.
TRAIN_CSV = (
    "Image name,Retinopathy grade,Risk of macular edema ,,,\n"
    "IDRiD_001,3,2,,,\n"
    "IDRiD_002,0,0,,,\n"
    "IDRiD_003,,0,,,\n"
    "IDRiD_004,x,0,,,\n"
    "IDRiD_005,7,0,,,\n"
    "IDRiD_006,1,0,,,\n"
    ",,,,,\n"
)
TEST_CSV = "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,4,1\n"


def build(tmp_path, test_csv=TEST_CSV):
    return build_idrid(
        tmp_path,
        TRAIN_CSV,
        ["IDRiD_001", "IDRiD_002", "IDRiD_003", "IDRiD_004", "IDRiD_005"],
        test_csv,
        ["IDRiD_001"],
        {
            "a. Training Set": {
                "IDRiD_01": ["MA", "HE", "EX", "SE", "OD"],
                "IDRiD_02": ["MA", "EX"],
            },
            "b. Testing Set": {"IDRiD_55": ["HE", "OD"]},
        },
    )


def test_reads_grading_and_segmentation_records(tmp_path):
    """Ids are namespaced by part and set; masks map to our lesion names, OD skipped."""
    build(tmp_path)
    records = {r.image_id: r for r in read_dataset("idrid", tmp_path, problems=[])}
    assert sorted(records) == [
        "grading-test-IDRiD_001",
        "grading-train-IDRiD_001",
        "grading-train-IDRiD_002",
        "segmentation-test-IDRiD_55",
        "segmentation-train-IDRiD_01",
        "segmentation-train-IDRiD_02",
    ]
    assert records["grading-train-IDRiD_001"].grade == 3
    assert records["grading-test-IDRiD_001"].grade == 4
    assert records["grading-test-IDRiD_001"].image_path == str(
        tmp_path / "B. Disease Grading/1. Original Images/b. Testing Set/IDRiD_001.jpg"
    )
    masks = tmp_path / "A. Segmentation/2. All Segmentation Groundtruths"
    assert records["segmentation-train-IDRiD_01"].lesion_masks == {
        MICROANEURYSM: str(masks / "a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif"),
        HEMORRHAGE: str(masks / "a. Training Set/2. Haemorrhages/IDRiD_01_HE.tif"),
        HARD_EXUDATE: str(masks / "a. Training Set/3. Hard Exudates/IDRiD_01_EX.tif"),
        SOFT_EXUDATE: str(masks / "a. Training Set/4. Soft Exudates/IDRiD_01_SE.tif"),
    }
    assert set(records["segmentation-train-IDRiD_02"].lesion_masks) == {MICROANEURYSM, HARD_EXUDATE}
    assert records["segmentation-test-IDRiD_55"].grade is None
    assert all(r.patient_id == r.image_id and r.eye == "" for r in records.values())


def test_reports_bad_grading_rows(tmp_path):
    build(tmp_path)
    problems = []
    read_dataset("idrid", tmp_path, problems)
    labels = tmp_path / IDRID_TRAIN_LABELS
    images = tmp_path / "B. Disease Grading/1. Original Images/a. Training Set"
    assert [p.source for p in problems] == [
        f"{labels}:4",
        f"{labels}:5",
        f"{labels}:6",
        str(images / "IDRiD_006.jpg"),
    ]


def test_testing_labels_are_optional_and_split_follows_sets(tmp_path):
    build(tmp_path, test_csv=None)
    split = official_split("idrid", tmp_path)
    assert "grading-test-IDRiD_001" not in split
    assert split["grading-train-IDRiD_002"] == "train"
    assert split["segmentation-test-IDRiD_55"] == "test"


def test_missing_training_labels_names_expected_path(tmp_path):
    (tmp_path / "B. Disease Grading").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        read_dataset("idrid", tmp_path)
    assert str(tmp_path / IDRID_TRAIN_LABELS) in str(error.value)


def test_neither_part_present_names_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="A. Segmentation"):
        read_dataset("idrid", tmp_path)
