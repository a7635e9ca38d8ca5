"""Patient-level train/validation/test splits: computed once, written as image ids, read after.

`split_by_patient` computes a split; `Splits` is the split as image ids, written by whoever
computes it (``drscreen prepare`` into its output folder, training into the run directory) as
``splits.json`` (`SPLITS_FILE`), with the seed and fractions it was made with. Everything
downstream (training batches, ``drscreen evaluate``) reads that file instead of computing the
split again, so the held-out images are exactly those training never saw.

A split belongs to one dataset: ``splits.json`` records its reader, its folder and a
fingerprint of every image id and grade the reader found (`dataset_fingerprint`), and
`Splits.splits_dataset` says whether records are that dataset. Image ids alone prove nothing:
two synthetic benchmarks, or two Kaggle-style archives, share names like ``3_left``.

Both eyes of a patient always land in the same split (a patient is identified by the dataset
and `patient_id`). Patients are stratified by their worst (maximum) grade: strata are laid
end to end, patients shuffled within each, and the sequence is dealt to the splits so that
every prefix is as close as possible to the target fractions; every stratum then gets its
share to within one patient, and tiny strata still spread across splits overall.
"""

import collections
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from drscreen.data.records import FundusRecord

SPLITS = ("train", "validation", "test")
ALL = "all"
"""Pseudo split name: every image of the three splits."""
SPLITS_FILE = "splits.json"


def split_fractions(val_fraction: float, test_fraction: float) -> tuple[float, float, float]:
    """(train, validation, test) fractions; raises ValueError unless they are valid."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction {val_fraction} and test_fraction {test_fraction} must be >= 0 "
            "and sum to less than 1"
        )
    return 1.0 - val_fraction - test_fraction, val_fraction, test_fraction


def split_by_patient(
    records: Sequence[FundusRecord],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, list[FundusRecord]]:
    """Splits records by patient.

    Parameters
    ----------
    records:
        Photographs to split, in any order (the result does not depend on it).
    val_fraction, test_fraction:
        Target share of patients in validation and test; train gets the rest.
    seed:
        Seed of the shuffle within strata.

    Returns
    -------
    dict[str, list[FundusRecord]]
        ``"train"``, ``"validation"`` and ``"test"`` to their records, each sorted by
        (dataset, patient_id, image_id).
    """
    fractions = np.array(split_fractions(val_fraction, test_fraction))
    patients: dict[tuple[str, str], list[FundusRecord]] = collections.defaultdict(list)
    for record in records:
        patients[(record.dataset, record.patient_id)].append(record)

    def worst_grade(key: tuple[str, str]) -> int:
        return max(-1 if r.grade is None else r.grade for r in patients[key])

    strata: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
    for key in sorted(patients):
        strata[worst_grade(key)].append(key)
    rng = np.random.default_rng(seed)
    order = []
    for grade in sorted(strata):
        keys = strata[grade]
        order += [keys[i] for i in rng.permutation(len(keys))]

    counts = np.zeros(len(SPLITS))
    result: dict[str, list[FundusRecord]] = {name: [] for name in SPLITS}
    for dealt, key in enumerate(order, start=1):
        chosen = int(np.argmax(fractions * dealt - counts))
        counts[chosen] += 1
        result[SPLITS[chosen]] += patients[key]
    for name in SPLITS:
        result[name].sort(key=lambda r: (r.dataset, r.patient_id, r.image_id))
    return result


def dataset_fingerprint(records: Sequence[FundusRecord]) -> str:
    """A digest of the (reader, image id, grade) of every record, in any order: equal for the
    same dataset, different when an image or a grade was added, removed or changed."""
    lines = sorted(
        f"{record.dataset}\t{record.image_id}\t{'' if record.grade is None else record.grade}"
        for record in records
    )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Splits:
    """A split as image ids: what ``splits.json`` holds.

    Attributes
    ----------
    image_ids:
        ``"train"``, ``"validation"`` and ``"test"`` to their image ids, in
        `split_by_patient` order.
    made_by:
        Who computed the split (``"drscreen prepare"``, ``"drscreen.training"``).
    seed, val_fraction, test_fraction:
        The arguments of `split_by_patient` it was computed with.
    dataset:
        Reader the records came from.
    folder:
        The folder the records were read from (absolute), where it can be read again.
    fingerprint:
        `dataset_fingerprint` of every record the reader found (those the split then left
        out included); "" in files written before fingerprints existed.
    """

    image_ids: Mapping[str, tuple[str, ...]]
    made_by: str
    seed: int
    val_fraction: float
    test_fraction: float
    dataset: str = ""
    folder: str = ""
    fingerprint: str = ""

    def __post_init__(self):
        if set(self.image_ids) != set(SPLITS):
            raise ValueError(f"splits {sorted(self.image_ids)} are not {', '.join(SPLITS)}")
        seen: dict[str, str] = {}
        for name in SPLITS:
            for image_id in self.image_ids[name]:
                if image_id in seen:
                    raise ValueError(
                        f"image id {image_id!r} is in {seen[image_id]} and {name}: image ids "
                        "must be unique across the splits"
                    )
                seen[image_id] = name

    @classmethod
    def from_parts(
        cls,
        parts: Mapping[str, Sequence[FundusRecord]],
        made_by: str,
        seed: int,
        val_fraction: float,
        test_fraction: float,
        records: Sequence[FundusRecord],
        folder: str | os.PathLike,
    ) -> "Splits":
        """The ids of `split_by_patient`'s result (or of the part of it that was kept), as a
        split of ``records`` (every record the reader found) read from ``folder``."""
        datasets = {record.dataset for record in records}
        return cls(
            image_ids={name: tuple(record.image_id for record in parts[name]) for name in SPLITS},
            made_by=made_by,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            dataset=",".join(sorted(datasets)),
            folder=os.path.abspath(folder),
            fingerprint=dataset_fingerprint(records),
        )

    @classmethod
    def by_patient(
        cls,
        records: Sequence[FundusRecord],
        val_fraction: float,
        test_fraction: float,
        seed: int,
        made_by: str,
        folder: str | os.PathLike,
    ) -> "Splits":
        """`split_by_patient` of ``records`` (read from ``folder``), kept as image ids."""
        parts = split_by_patient(records, val_fraction, test_fraction, seed)
        return cls.from_parts(parts, made_by, seed, val_fraction, test_fraction, records, folder)

    def splits_dataset(self, records: Sequence[FundusRecord]) -> bool | None:
        """Whether ``records`` are the dataset this split was made from (same fingerprint);
        None when this split predates fingerprints."""
        if not self.fingerprint:
            return None
        return dataset_fingerprint(records) == self.fingerprint

    def ids(self, split: str) -> tuple[str, ...]:
        """The image ids of ``split`` (`ALL`: of every split, train first)."""
        if split == ALL:
            return tuple(i for name in SPLITS for i in self.image_ids[name])
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {(*SPLITS, ALL)}")
        return self.image_ids[split]

    def select(
        self, records: Sequence[FundusRecord], split: str, source: str
    ) -> list[FundusRecord]:
        """The records of ``split``, in split order.

        Raises
        ------
        ValueError
            When some ids of the split are not among ``records`` (named with ``source``).
        """
        by_id = {record.image_id: record for record in records}
        wanted = self.ids(split)
        missing = [image_id for image_id in wanted if image_id not in by_id]
        if missing:
            raise ValueError(
                f"{source}: {len(missing)} of the {len(wanted)} {split} images of the split "
                f"({self.describe()}) are not there, e.g. {missing[0]!r}"
            )
        return [by_id[image_id] for image_id in wanted]

    def describe(self) -> str:
        """One line for reports: who made the split and how."""
        counts = ", ".join(f"{name} {len(self.image_ids[name])}" for name in SPLITS)
        of = f" of {self.dataset} {self.folder}" if self.folder else ""
        return (
            f"patient-level split{of} by {self.made_by} (validation {self.val_fraction:g}, "
            f"test {self.test_fraction:g}, seed {self.seed}; {counts} images)"
        )

    def write(self, path: str | os.PathLike) -> None:
        """Write ``splits.json`` (``path`` is the file or its folder)."""
        path = os.fspath(path)
        if tf.io.gfile.isdir(path):
            path = os.path.join(path, SPLITS_FILE)
        values = dataclasses.asdict(self)
        values["image_ids"] = {name: list(self.image_ids[name]) for name in SPLITS}
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(values, f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Splits":
        """Read a ``splits.json`` (``path`` is the file or its folder).

        Raises
        ------
        FileNotFoundError
            When there is no such file.
        ValueError
            When it is not a valid split.
        """
        path = os.fspath(path)
        if tf.io.gfile.isdir(path):
            path = os.path.join(path, SPLITS_FILE)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"{path}: no such split file")
        try:
            with tf.io.gfile.GFile(path) as f:
                values = json.load(f)
            values["image_ids"] = {
                name: tuple(str(i) for i in ids) for name, ids in values["image_ids"].items()
            }
            return cls(**values)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a valid {SPLITS_FILE}: {error}") from error
