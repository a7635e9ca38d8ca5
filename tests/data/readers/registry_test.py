"""The reader registry: names, errors, duplicates, order."""

import pytest

from drscreen.data.readers import DATASET_NAMES, official_split, read_dataset
from tests.data.readers.builders import build_aptos, build_kaggle


def test_dataset_names():
    assert DATASET_NAMES == ("synthetic", "kaggle", "aptos", "messidor2", "idrid", "diaretdb1")


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'eyepacs'.*synthetic, kaggle, aptos"):
        read_dataset("eyepacs", tmp_path)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_missing_directory_names_it_and_layout(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="Expected layout") as error:
        read_dataset(name, missing)
    assert str(missing) in str(error.value)


def test_duplicate_image_id_is_a_problem(tmp_path):
    """A row repeated with its grade is left out once; an id listed with two grades is left
    out altogether, the problem naming both grades."""
    build_kaggle(
        tmp_path, "image,level\n1_left,0\n1_left,0\n2_left,1\n2_left,3\n", ["1_left", "2_left"]
    )
    problems = []
    records = read_dataset("kaggle", tmp_path, problems)
    assert [(r.image_id, r.grade) for r in records] == [("1_left", 0)]
    assert [p.reason for p in problems] == [
        "duplicate image_id '1_left' (listed again with the same grade 0)",
        "duplicate image_id '2_left' with conflicting grades 1 and 3: left out",
    ]


def test_order_is_natural_and_independent_of_file_order(tmp_path):
    build_aptos(
        tmp_path, "id_code,diagnosis\nb10,0\na2,1\nb9,2\na10,3\n", ["b10", "a2", "b9", "a10"]
    )
    assert [r.image_id for r in read_dataset("aptos", tmp_path)] == ["a2", "a10", "b9", "b10"]


def test_official_split_empty_for_datasets_without_one(tmp_path):
    build_aptos(tmp_path, "id_code,diagnosis\na,0\n", ["a"])
    assert official_split("aptos", tmp_path) == {}
