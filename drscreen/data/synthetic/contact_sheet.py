"""A PNG grid of synthetic photographs, each shown plain and with its lesion masks outlined.

For looking at the benchmark: one colour per lesion type, the image name and grade on each
tile, a legend at the bottom. Must not generate images itself beyond `generate_fundus`.
"""

import pathlib
from collections.abc import Sequence

import cv2
import numpy as np

from drscreen.data import lesions as lesion_types
from drscreen.data.synthetic.generator import SyntheticFundus

LESION_COLOURS = {  # RGB
    lesion_types.MICROANEURYSM: (0, 255, 255),
    lesion_types.HEMORRHAGE: (40, 110, 255),
    lesion_types.HARD_EXUDATE: (0, 255, 0),
    lesion_types.SOFT_EXUDATE: (255, 255, 255),
    lesion_types.NEOVASCULARISATION: (255, 0, 255),
}


def _label(tile: np.ndarray, text: str, y: int) -> None:
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(
            tile, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness, cv2.LINE_AA
        )


def _outlined(fundus: SyntheticFundus, tile_size: int) -> np.ndarray:
    ratio = tile_size / fundus.image.shape[0]
    tile = cv2.resize(fundus.image, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
    for kind, mask in fundus.masks.items():
        colour = LESION_COLOURS[kind]
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        scaled = [np.rint(c * ratio * 16).astype(np.int32) for c in contours]
        cv2.polylines(tile, scaled, True, colour, 1, cv2.LINE_AA, 4)
    for row in fundus.lesions:
        if row.radius * ratio < 3:
            centre = (round(row.center_x * ratio), round(row.center_y * ratio))
            cv2.circle(tile, centre, 5, LESION_COLOURS[row.lesion_type], 1, cv2.LINE_AA)
    return tile


def contact_sheet(
    fundi: Sequence[SyntheticFundus],
    path: str | pathlib.Path,
    columns: int = 4,
    tile_size: int = 384,
) -> pathlib.Path:
    """Writes a PNG grid: each row of photographs, then the same row with masks outlined.

    Parameters
    ----------
    fundi:
        The images to show (e.g. ``[generate_fundus(config, i) for i in range(8)]``).
    path:
        Where to write the PNG; parent folders are created.
    columns:
        Images per row.
    tile_size:
        Side of each tile in pixels.

    Returns
    -------
    The path written.
    """
    if not fundi:
        raise ValueError("contact_sheet needs at least one image")
    blank = np.zeros((tile_size, tile_size, 3), np.uint8)
    rows = []
    for start in range(0, len(fundi), columns):
        chunk = list(fundi[start : start + columns])
        plain, outlined = [], []
        for fundus in chunk:
            tile = cv2.resize(fundus.image, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
            _label(tile, f"{fundus.name}  grade {fundus.grade}", 18)
            plain.append(tile)
            outlined.append(_outlined(fundus, tile_size))
        padding = [blank] * (columns - len(chunk))
        rows += [np.hstack(plain + padding), np.hstack(outlined + padding)]
    legend = np.zeros((28, tile_size * columns, 3), np.uint8)
    x = 8
    for kind, colour in LESION_COLOURS.items():
        cv2.rectangle(legend, (x, 8), (x + 12, 20), colour, -1)
        cv2.putText(
            legend,
            kind,
            (x + 18, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        x += 40 + 9 * len(kind)
    sheet = np.vstack([*rows, legend])
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the contact sheet PNG")
    return path
