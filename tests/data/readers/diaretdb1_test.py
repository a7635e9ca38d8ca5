"""DIARETDB1 reader and the 0.75 consensus binarisation."""

import cv2
import numpy as np
import pytest

from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, MICROANEURYSM, SOFT_EXUDATE
from drscreen.data.readers import binarize_mask, official_split, read_dataset
from drscreen.data.readers.diaretdb1 import CONSENSUS_THRESHOLD, binarize_consensus
from tests.data.readers.builders import build_diaretdb1


def test_reads_images_with_four_maps_and_reports_missing_maps(tmp_path):
    build_diaretdb1(
        tmp_path,
        ["image010.png", "image002.png", "image003.png"],
        maps_for=["image010.png", "image002.png"],
        trainset=None,
        testset=None,
    )
    problems = []
    records = read_dataset("diaretdb1", tmp_path, problems)
    assert [(r.image_id, r.grade, r.patient_id, r.eye) for r in records] == [
        ("image002", None, "image002", ""),
        ("image010", None, "image010", ""),
    ]
    truth = tmp_path / "resources/images/ddb1_groundtruth"
    assert records[0].lesion_masks == {
        HARD_EXUDATE: str(truth / "hardexudates/image002.png"),
        HEMORRHAGE: str(truth / "hemorrhages/image002.png"),
        MICROANEURYSM: str(truth / "redsmalldots/image002.png"),
        SOFT_EXUDATE: str(truth / "softexudates/image002.png"),
    }
    fundus = tmp_path / "resources/images/ddb1_fundusimages"
    assert [p.source for p in problems] == [str(fundus / "image003.png")]
    assert official_split("diaretdb1", tmp_path) == {}


def test_split_files_name_images_by_first_token(tmp_path):
    build_diaretdb1(
        tmp_path,
        ["image001.png", "image002.png"],
        ["image001.png", "image002.png"],
        trainset="images/ddb1_fundusimages/image001.png extra\n\n",
        testset="image002.png\n",
    )
    assert official_split("diaretdb1", tmp_path) == {"image001": "train", "image002": "test"}


def test_missing_images_folder_names_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        read_dataset("diaretdb1", tmp_path)
    assert str(tmp_path / "resources/images/ddb1_fundusimages") in str(error.value)


def test_binarize_consensus_threshold_on_decoded_png(tmp_path):
    """0.75 * 255 = 191.25: level 191 is out, 192 in; a 16-bit map scales by 65535."""
    grey = np.array([[0, 191], [192, 255]], np.uint8)
    path = str(tmp_path / "map.png")
    cv2.imwrite(path, grey)
    decoded = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    expected = np.array([[False, False], [True, True]])
    assert CONSENSUS_THRESHOLD == 0.75
    np.testing.assert_array_equal(binarize_consensus(decoded), expected)
    np.testing.assert_array_equal(binarize_mask(decoded, "diaretdb1"), expected)
    np.testing.assert_array_equal(
        binarize_consensus(decoded, threshold=0.5), np.array([[False, True], [True, True]])
    )
    np.testing.assert_array_equal(
        binarize_consensus(np.array([[49151, 49152]], np.uint16)), np.array([[False, True]])
    )
    colour = np.zeros((1, 2, 3), np.uint8)
    colour[0, 1, 2] = 200
    np.testing.assert_array_equal(binarize_consensus(colour), np.array([[False, True]]))


def test_binarize_consensus_rejects_bad_input():
    with pytest.raises(ValueError, match="unsigned"):
        binarize_consensus(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="threshold"):
        binarize_consensus(np.zeros((2, 2), np.uint8), threshold=0.0)


def test_binarize_mask_other_datasets_is_any_nonzero():
    mask = np.array([[0, 1], [76, 255]], np.uint8)
    np.testing.assert_array_equal(binarize_mask(mask, "idrid"), mask > 0)
