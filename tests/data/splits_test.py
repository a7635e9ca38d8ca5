"""Tests of the patient-level, stratified, deterministic split."""

import collections

import pytest

from drscreen.data.records import FundusRecord
from drscreen.data.splits import ALL, SPLITS, Splits, split_by_patient


def _records(num_patients: int) -> list[FundusRecord]:
    records = []
    for p in range(num_patients):
        worst = p % 5
        for eye, grade in (("left", worst), ("right", max(0, worst - 1))):
            records.append(
                FundusRecord(f"{p}_{eye}", f"/x/{p}_{eye}.jpeg", grade, str(p), eye, dataset="d")
            )
    return records


def test_eyes_of_a_patient_share_a_split():
    """No patient appears in two splits."""
    result = split_by_patient(_records(40))
    owners = collections.defaultdict(set)
    for name in SPLITS:
        for record in result[name]:
            owners[record.patient_id].add(name)
    assert all(len(splits) == 1 for splits in owners.values())
    assert sum(len(result[n]) for n in SPLITS) == 80


def test_fractions_and_strata():
    """100 patients, 20 per worst grade: 14/3/3 of each grade (0.7/0.15/0.15)."""
    result = split_by_patient(_records(100))
    for name, share in zip(SPLITS, (14, 3, 3), strict=True):
        worst = collections.Counter(r.grade for r in result[name] if r.eye == "left")
        assert worst == {g: share for g in range(5)}


def test_deterministic_and_seeded():
    """Same seed and shuffled input order give the same split; another seed differs."""
    records = _records(30)
    first = split_by_patient(records, seed=3)
    again = split_by_patient(list(reversed(records)), seed=3)
    other = split_by_patient(records, seed=4)
    assert first == again
    assert first != other


def test_bad_fractions_are_refused():
    """Fractions that leave nothing for training are refused."""
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_patient(_records(4), val_fraction=0.5, test_fraction=0.5)


def test_splits_file_round_trip_and_selection(tmp_path):
    """splits.json keeps ids, seed and fractions; `select` returns exactly a split's records."""
    records = _records(20)
    splits = Splits.by_patient(records, 0.2, 0.25, seed=3, made_by="test", folder=str(tmp_path))
    expected = split_by_patient(records, 0.2, 0.25, seed=3)
    for name in SPLITS:
        assert splits.select(records, name, "here") == expected[name]
    assert len(splits.ids(ALL)) == len(records)
    splits.write(tmp_path)
    assert Splits.load(tmp_path / "splits.json") == splits
    assert "by test (validation 0.2, test 0.25, seed 3;" in splits.describe()


def test_missing_and_repeated_ids_are_named(tmp_path):
    """Records lacking a split's id, an id in two splits, or a broken file: clear errors."""
    records = _records(10)
    splits = Splits.by_patient(records, 0.2, 0.2, seed=0, made_by="test", folder=str(tmp_path))
    lost = splits.ids("test")[0]
    with pytest.raises(ValueError, match=f"data: 1 of the .* test images .* e.g. '{lost}'"):
        splits.select([r for r in records if r.image_id != lost], "test", "data")
    ids = {"train": ("a", "b"), "validation": ("b",), "test": ()}
    with pytest.raises(ValueError, match="'b' is in train and validation"):
        Splits(ids, "test", 0, 0.2, 0.2)
    (tmp_path / "splits.json").write_text("{}")
    with pytest.raises(ValueError, match="not a valid splits.json"):
        Splits.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such split file"):
        Splits.load(tmp_path / "nothing.json")
