"""Dataset readers: local copies of public fundus datasets to lists of `FundusRecord`.

One module per dataset (its docstring states the layout, what was verified and what was
assumed); this module is the registry. Readers list files and parse label files; they never
decode images (that is `drscreen.data.image_io`'s job) but check that every listed image and
mask exists.

Problems. A row that cannot become a record (missing image file, missing or invalid grade,
ungradable image, missing mask, duplicate ``image_id``) is always skipped and described by a
`Problem` ``(source, reason)`` tuple, ``source`` being the file or ``"<label file>:<line>"``.
Pass a list as ``problems`` to collect them and keep the good records; with the default
``problems=None`` any problem raises `DatasetProblemsError`, so nothing is dropped silently.
A missing data directory or label file raises FileNotFoundError naming the expected path and
the dataset's layout; an unknown dataset name raises ValueError.

Order. Records are sorted by ``image_id`` in natural order (``"2_left"`` before ``"10_left"``).
"""

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from drscreen.data.readers import aptos, diaretdb1, idrid, kaggle, messidor2, synthetic
from drscreen.data.readers.common import DatasetProblemsError, Problem, sort_records
from drscreen.data.records import FundusRecord

__all__ = [
    "DATASET_NAMES",
    "DatasetProblemsError",
    "Problem",
    "binarize_mask",
    "official_split",
    "read_dataset",
]

DATASET_NAMES = ("synthetic", "kaggle", "aptos", "messidor2", "idrid", "diaretdb1")

_READERS: dict[str, ModuleType] = {
    "synthetic": synthetic,
    "kaggle": kaggle,
    "aptos": aptos,
    "messidor2": messidor2,
    "idrid": idrid,
    "diaretdb1": diaretdb1,
}
_SPLIT_READERS: dict[str, Callable[[Path], dict[str, str]]] = {
    "kaggle": kaggle.read_split,
    "idrid": idrid.read_split,
    "diaretdb1": diaretdb1.read_split,
}


def _reader(name: str, data_dir: str | Path) -> tuple[ModuleType, Path]:
    if name not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    module, data_dir = _READERS[name], Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"{name}: data directory {data_dir} does not exist.\nExpected layout:\n{module.LAYOUT}"
        )
    return module, data_dir


def read_dataset(
    name: str, data_dir: str | Path, problems: list[Problem] | None = None
) -> list[FundusRecord]:
    """Read dataset ``name`` from its local copy in ``data_dir``.

    Parameters
    ----------
    name:
        One of `DATASET_NAMES`.
    data_dir:
        The dataset's root folder, laid out as the dataset ships it.
    problems:
        List to which `Problem` tuples are appended for skipped rows; ``None`` makes any
        problem raise `DatasetProblemsError`.

    Returns
    -------
    The records, sorted by ``image_id`` in natural order.
    """
    module, data_dir = _reader(name, data_dir)
    found: list[Problem] = []
    records = _without_duplicates(module.read(data_dir, found), found)
    if problems is None and found:
        raise DatasetProblemsError(name, found)
    if problems is not None:
        problems.extend(found)
    return sort_records(records)


def _without_duplicates(records: list[FundusRecord], problems: list[Problem]) -> list[FundusRecord]:
    """``records`` with each image id once: a repeated row with the same grade is a problem
    and left out; an id listed with different grades is left out altogether (which grade is
    true cannot be known), the problem naming both grades."""
    first: dict[str, FundusRecord] = {}
    conflicting: set[str] = set()
    for record in records:
        kept = first.setdefault(record.image_id, record)
        if kept is record:
            continue
        if record.grade == kept.grade:
            problems.append(
                Problem(
                    record.image_path,
                    f"duplicate image_id {record.image_id!r} (listed again with the same "
                    f"grade {record.grade})",
                )
            )
        else:
            conflicting.add(record.image_id)
            problems.append(
                Problem(
                    record.image_path,
                    f"duplicate image_id {record.image_id!r} with conflicting grades "
                    f"{kept.grade} and {record.grade}: left out",
                )
            )
    return [record for record in first.values() if record.image_id not in conflicting]


def official_split(name: str, data_dir: str | Path) -> dict[str, str]:
    """The dataset's own ``image_id -> "train" | "test"`` split; empty when it ships none.

    Kaggle: ``trainLabels.csv`` vs ``retinopathy_solution.csv``; IDRiD: its training and
    testing sets; DIARETDB1: its split files. APTOS (labelled part), Messidor-2 and the
    synthetic benchmark ship no split.
    """
    _, data_dir = _reader(name, data_dir)
    return _SPLIT_READERS[name](data_dir) if name in _SPLIT_READERS else {}


def binarize_mask(mask: np.ndarray, dataset: str) -> np.ndarray:
    """Binary ``(H, W)`` mask from a decoded lesion-mask image of ``dataset``.

    DIARETDB1's grey-level consensus maps are thresholded at
    `diaretdb1.CONSENSUS_THRESHOLD`; other datasets' masks are binary already (any non-zero
    level, in any channel, is lesion).
    """
    if dataset == "diaretdb1":
        return diaretdb1.binarize_consensus(mask)
    return (mask.max(axis=-1) if mask.ndim == 3 else mask) > 0
