"""Where the photographs of a split come from: image files or a ``drscreen prepare`` folder.

A `Source` is what `drscreen.data.pipeline` reads: a sequence of `FundusRecord` (image files
decoded on the fly, lesion masks read from their own files) or a `PreparedSplit` (examples of
a ``drscreen prepare`` output folder, lesion masks stored in them). `split_source` turns a data
folder of either kind and a split (`drscreen.data.splits.Splits`, read from a ``splits.json``)
into the source of exactly that split's images, or says which images are missing.
"""

import dataclasses
import os
from collections.abc import Collection, Sequence

import tensorflow as tf

from drscreen.data.prepare import MANIFEST_NAME, Manifest
from drscreen.data.readers import read_dataset
from drscreen.data.readers.common import Problem
from drscreen.data.records import FundusRecord
from drscreen.data.splits import ALL, SPLITS, Splits


@dataclasses.dataclass(frozen=True)
class PreparedSplit:
    """Examples of a ``drscreen prepare`` output folder.

    Attributes
    ----------
    folder:
        The folder holding the shards, ``manifest.json`` and ``splits.json``.
    split:
        Read the shards of this split (``train``, ``validation``, ``test``); None reads every
        shard.
    image_ids:
        Keep only the examples with these image ids; None keeps every example read.
    """

    folder: str
    split: str | None = None
    image_ids: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is not one of {SPLITS} (or None: all)")


Source = Sequence[FundusRecord] | PreparedSplit
"""Photographs as `drscreen.data.pipeline` reads them."""


def is_prepared(folder: str) -> bool:
    """Whether ``folder`` is a ``drscreen prepare`` output (it holds a ``manifest.json``)."""
    return tf.io.gfile.exists(os.path.join(folder, MANIFEST_NAME))


def _manifest_splits(source: PreparedSplit) -> list[dict]:
    manifest = Manifest.load(source.folder)
    names = SPLITS if source.split is None else (source.split,)
    return [manifest.splits[name] for name in names]


def source_size(source: Source) -> int:
    """Photographs in ``source``."""
    if not isinstance(source, PreparedSplit):
        return len(source)
    if source.image_ids is not None:
        return len(source.image_ids)
    return sum(split["count"] for split in _manifest_splits(source))


def has_lesion_masks(source: Source) -> bool:
    """Whether any photograph of ``source`` has a lesion mask (the manifest counts them for a
    prepared folder)."""
    if not isinstance(source, PreparedSplit):
        return any(record.lesion_masks for record in source)
    return any(split.get("lesion_masks") for split in _manifest_splits(source))


def only_images(source: Source, image_ids: Collection[str]) -> Source:
    """The photographs of ``source`` whose id is in ``image_ids``, in ``source`` order."""
    if isinstance(source, PreparedSplit):
        return dataclasses.replace(source, image_ids=tuple(sorted(image_ids)))
    return [record for record in source if record.image_id in image_ids]


def _prepared_source(folder: str, splits: Splits, split: str) -> PreparedSplit:
    """The shards holding ``splits``' ``split`` ids, filtered to them when they hold others."""
    try:
        own = Splits.load(folder)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{folder}: no splits.json, so its image ids are unknown; run `drscreen prepare` "
            "again (it writes one)"
        ) from None
    wanted = splits.ids(split)
    where = {name: set(own.ids(name)) for name in SPLITS}
    missing = [
        image_id for image_id in wanted if not any(image_id in ids for ids in where.values())
    ]
    if missing:
        raise ValueError(
            f"{folder}: {len(missing)} of the {len(wanted)} {split} images of the split "
            f"({splits.describe()}) are not there, e.g. {missing[0]!r}"
        )
    holding = [name for name in SPLITS if where[name].intersection(wanted)]
    shards = holding[0] if len(holding) == 1 else None
    if shards is not None and where[shards] == set(wanted):
        return PreparedSplit(folder, shards)
    return PreparedSplit(folder, shards, tuple(wanted))


def split_source(
    data: str,
    dataset: str,
    splits: Splits | None = None,
    split: str = ALL,
    problems: list[Problem] | None = None,
) -> Source:
    """The photographs of ``split`` of ``splits`` in the folder ``data``.

    Parameters
    ----------
    data:
        A ``drscreen prepare`` output folder (detected by its manifest), or a dataset folder.
    dataset:
        Reader of a dataset folder (`drscreen.data.readers.DATASET_NAMES`); unused for a
        prepared folder.
    splits, split:
        The split and the part of it wanted (`ALL`: every image of the split); with
        ``splits`` None, every photograph of ``data``.
    problems:
        Collects the rows the reader could not use instead of raising (see `read_dataset`).

    Returns
    -------
    Records in split order, or a `PreparedSplit` reading only the shards (and examples) of
    those images.

    Raises
    ------
    ValueError
        When some images of the split are not in ``data`` (naming one), or ``data`` has none.
    """
    if is_prepared(data):
        return PreparedSplit(data) if splits is None else _prepared_source(data, splits, split)
    records = read_dataset(dataset, data, problems)
    if not records:
        raise ValueError(f"data {data}: the {dataset} reader found no image")
    return records if splits is None else splits.select(records, split, f"data {data}")
