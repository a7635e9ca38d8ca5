"""Reader for DIARETDB1 v2.1 (distributed as ``diaretdb1_v_1_1``), and its consensus masks.

Layout (verified against the database's evaluation toolkit configuration and public loaders):
``resources/images/ddb1_fundusimages/imageNNN.png`` (89 images) and, for each image, one
expert-consensus map with the image's file name in each of
``resources/images/ddb1_groundtruth/{hardexudates,hemorrhages,redsmalldots,softexudates}/``,
mapped to hard exudate, hemorrhage, microaneurysm ("red small dots") and soft exudate. The
data directory is the folder holding ``resources/``. Images carry no DR grade (``None``), no
patient and no eye. An image lacking one of its four maps is reported as a problem.

Split files ``resources/traindatasets/trainset.txt`` and ``resources/testdatasets/testset.txt``
are read by `read_split` when present. Assumed, not verified: each non-blank line names one
image as its first whitespace-separated token, either a bare file name or a path ending in it
(``/`` or ``\\`` separated).

Binarisation. The maps are grey levels, not binary masks: a pixel's level over the dtype's
maximum is the experts' confidence that it belongs to the lesion. The toolkit evaluates at a
confidence of 0.75 (``evalconfidence``), the standard threshold, exposed here as
`CONSENSUS_THRESHOLD`; `binarize_consensus` applies it. Colour maps are reduced by their
brightest channel.
"""

from pathlib import Path, PureWindowsPath

import numpy as np

from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, MICROANEURYSM, SOFT_EXUDATE
from drscreen.data.readers.common import Problem, require
from drscreen.data.records import FundusRecord

CONSENSUS_THRESHOLD = 0.75
IMAGES = Path("resources/images/ddb1_fundusimages")
GROUNDTRUTH = Path("resources/images/ddb1_groundtruth")
SPLIT_FILES = {
    "train": Path("resources/traindatasets/trainset.txt"),
    "test": Path("resources/testdatasets/testset.txt"),
}
LESION_FOLDERS = {
    HARD_EXUDATE: "hardexudates",
    HEMORRHAGE: "hemorrhages",
    MICROANEURYSM: "redsmalldots",
    SOFT_EXUDATE: "softexudates",
}
LAYOUT = """\
  <data_dir>/resources/images/ddb1_fundusimages/imageNNN.png
  <data_dir>/resources/images/ddb1_groundtruth/{hardexudates,hemorrhages,redsmalldots,softexudates}/imageNNN.png
  <data_dir>/resources/traindatasets/trainset.txt, resources/testdatasets/testset.txt  (optional)"""


def binarize_consensus(grey: np.ndarray, threshold: float = CONSENSUS_THRESHOLD) -> np.ndarray:
    """Binary lesion mask of a consensus map: confidence ``level / max level >= threshold``.

    Parameters
    ----------
    grey:
        Unsigned-integer map, ``(H, W)`` or ``(H, W, C)``; channels are reduced by their max.
    threshold:
        Expert confidence in ``(0, 1]``.

    Returns
    -------
    Boolean ``(H, W)`` mask.
    """
    if not np.issubdtype(grey.dtype, np.unsignedinteger):
        raise ValueError(f"consensus map must be unsigned integers, got dtype {grey.dtype}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if grey.ndim == 3:
        grey = grey.max(axis=-1)
    return grey.astype(np.float64) / np.iinfo(grey.dtype).max >= threshold


def read(data_dir: Path, problems: list[Problem]) -> list[FundusRecord]:
    """Read the fundus images with their four consensus maps."""
    images = require(data_dir / IMAGES, "diaretdb1", LAYOUT)
    require(data_dir / GROUNDTRUTH, "diaretdb1", LAYOUT)
    records = []
    for path in sorted(images.glob("*.png")):
        masks = {
            lesion: data_dir / GROUNDTRUTH / folder / path.name
            for lesion, folder in LESION_FOLDERS.items()
        }
        missing = [str(mask) for mask in masks.values() if not mask.is_file()]
        if missing:
            problems.append(Problem(str(path), f"consensus map(s) missing: {missing}"))
            continue
        lesion_masks = {lesion: str(mask) for lesion, mask in masks.items()}
        records.append(
            FundusRecord(
                path.stem,
                str(path),
                None,
                path.stem,
                lesion_masks=lesion_masks,
                dataset="diaretdb1",
            )
        )
    return records


def read_split(data_dir: Path) -> dict[str, str]:
    """``image_id -> "train" | "test"`` from the split files present (empty when none is)."""
    split = {}
    for part, relative in SPLIT_FILES.items():
        if (data_dir / relative).is_file():
            for line in (data_dir / relative).read_text().splitlines():
                if line.strip():
                    split[PureWindowsPath(line.split()[0]).stem] = part
    return split
