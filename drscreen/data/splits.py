"""Patient-level train/validation/test splits, deterministic and stratified by grade.

Both eyes of a patient always land in the same split (a patient is identified by the dataset
and `patient_id`). Patients are stratified by their worst (maximum) grade: strata are laid
end to end, patients shuffled within each, and the sequence is dealt to the splits so that
every prefix is as close as possible to the target fractions; every stratum then gets its
share to within one patient, and tiny strata still spread across splits overall.
"""

import collections
from collections.abc import Sequence

import numpy as np

from drscreen.data.records import FundusRecord

SPLITS = ("train", "validation", "test")


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
