"""Heatmap overlays: a colour-mapped heatmap alpha-blended onto the fundus photograph.

The heatmap is normalised robustly (divided by a high percentile of its values inside the
field of view, then clipped to [0, 1]) so that a few extreme pixels do not wash the rest
out; the blend weight grows with the heatmap value, so unremarkable regions show the
photograph unchanged. `photograph_panel` maps a heatmap of the model's field-of-view crop
back onto the original photograph at its own resolution (downscaled to `READABLE_SIDE` when
larger, enlarged pixel by pixel to `MIN_READABLE_SIDE` when smaller), beside the plain
photograph, with a colour scale: the figure a grader reads. Lesion candidates (positions in
the crop, e.g. `drscreen.evaluation.lesions.candidates_to_mark`) are ringed and numbered on
the overlay, a ground-truth lesion mask outlined there; the plain photograph stays untouched
for the grader to compare.
"""

import os

import cv2
import matplotlib
import numpy as np

DEFAULT_PERCENTILE = 99.0
DEFAULT_ALPHA = 0.6
DEFAULT_COLORMAP = "inferno"
READABLE_SIDE = 1024
"""Longest side of a `photograph_panel`'s photographs; larger photographs are downscaled."""
MIN_READABLE_SIDE = 512
"""Smaller photographs are enlarged (nearest neighbour: their own pixels, nothing invented)
to this longest side, so a 128 px photograph is not a thumbnail."""
CANDIDATE_COLOUR = (0, 255, 255)
"""Rings around lesion candidates: cyan, apart from the colormap's black-red-yellow."""
LESION_COLOUR = (255, 0, 255)
"""Outline of a ground-truth lesion mask: magenta, as in the evaluation's gallery figure."""
_GAP = 8
_SCALE_WIDTH = 72


def normalize_heatmap(
    heatmap: np.ndarray,
    fov_mask: np.ndarray | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    top: float | None = None,
) -> np.ndarray:
    """|heatmap| / (its ``percentile``-th percentile inside the FOV), clipped to [0, 1];
    divided by ``top`` instead when given (a fixed scale, e.g. 1 for a probability map).

    Pixels outside ``fov_mask`` are 0. An all-zero heatmap stays all zero.
    """
    values = np.abs(np.asarray(heatmap, dtype=np.float64))
    inside = np.ones(values.shape, bool) if fov_mask is None else np.asarray(fov_mask) > 0.5
    if inside.shape != values.shape:
        raise ValueError(
            f"fov_mask shape {inside.shape} does not match heatmap shape {values.shape}"
        )
    values = np.where(inside, values, 0.0)
    if top is not None:
        return np.clip(values / top, 0.0, 1.0)
    positive = values[inside & (values > 0)]
    if positive.size == 0:
        return np.zeros(values.shape, np.float64)
    scale = np.percentile(positive, percentile)
    return np.clip(values / scale, 0.0, 1.0)


def heatmap_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    fov_mask: np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    percentile: float = DEFAULT_PERCENTILE,
    colormap: str = DEFAULT_COLORMAP,
) -> np.ndarray:
    """Blend the colour-mapped heatmap onto ``image``.

    Parameters
    ----------
    image:
        uint8 RGB (H, W, 3).
    heatmap:
        (h, w); resized bilinearly to (H, W) when the sizes differ.
    fov_mask:
        Optional field-of-view mask (h, w) of the heatmap; outside it the photograph is shown
        unchanged.
    alpha:
        Blend weight of the colour at the highest heatmap values, in [0, 1].
    percentile:
        Percentile of the in-FOV heatmap values mapped to the top of the colormap.
    colormap:
        A matplotlib colormap name.

    Returns
    -------
    uint8 RGB (H, W, 3).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"heatmap_overlay: image must be uint8 RGB (H, W, 3), got {image.dtype} {image.shape}"
        )
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap_overlay: heatmap must be (H, W), got shape {heatmap.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"heatmap_overlay: alpha must be in [0, 1], got {alpha}")
    strength = normalize_heatmap(heatmap, fov_mask, percentile).astype(np.float32)
    height, width = image.shape[:2]
    if strength.shape != (height, width):
        strength = cv2.resize(strength, (width, height), interpolation=cv2.INTER_LINEAR)
    return _blend(image, strength, alpha, colormap)


def _blend(image: np.ndarray, strength: np.ndarray, alpha: float, colormap: str) -> np.ndarray:
    """``image`` with the colours of ``strength`` (same size, in [0, 1]) blended in."""
    colours = matplotlib.colormaps[colormap](strength)[..., :3] * 255.0
    weight = (alpha * strength)[..., np.newaxis]
    blended = (1.0 - weight) * image.astype(np.float32) + weight * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _scaled(photograph: np.ndarray, box: tuple[int, int, int], max_side: int, min_side: int):
    """The photograph brought to a longest side in [min_side, max_side] and the crop's box
    in its pixels."""
    height, width = photograph.shape[:2]
    longest = max(height, width)
    scale = max_side / longest if longest > max_side else max(1.0, min_side / longest)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_NEAREST
        photograph = cv2.resize(photograph, size, interpolation=interpolation)
    top, left, side = (round(value * scale) for value in box)
    return photograph, (top, left, max(side, 1))


def _onto_photograph(
    crop_values: np.ndarray, box: tuple[int, int, int], shape: tuple[int, int], interpolation: int
) -> np.ndarray:
    """(S, S) values of the crop resized to the box's side and placed in a zero (h, w) canvas."""
    top, left, side = box
    square = cv2.resize(crop_values, (side, side), interpolation=interpolation)
    canvas = np.zeros(shape, crop_values.dtype)
    rows = slice(max(top, 0), min(top + side, shape[0]))
    cols = slice(max(left, 0), min(left + side, shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        canvas[rows, cols] = square[
            rows.start - top : rows.stop - top, cols.start - left : cols.stop - left
        ]
    return canvas


def heatmap_on_photograph(
    photograph: np.ndarray,
    heatmap: np.ndarray,
    box: tuple[int, int, int],
    fov_mask: np.ndarray | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    max_side: int = READABLE_SIDE,
    min_side: int = MIN_READABLE_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """The photograph (its longest side brought into [``min_side``, ``max_side``]) and the
    heatmap's strength on it.

    Parameters
    ----------
    photograph:
        uint8 RGB (H, W, 3), the original photograph.
    heatmap, fov_mask:
        (S, S) heatmap of the model's crop and the crop's field-of-view mask.
    box:
        The square cropped (top, left, side in the photograph's pixels;
        `drscreen.data.fundus.crop_to_field_of_view_box`), possibly past the frame.

    Returns
    -------
    The photograph (h, w, 3) and the normalised strength (h, w) in [0, 1] (0 outside the
    square), ``min_side <= max(h, w) <= max_side`` (up to rounding).
    """
    photograph, box = _scaled(np.asarray(photograph), box, max_side, min_side)
    return photograph, _strength_on(photograph, heatmap, box, fov_mask, percentile)


def _strength_on(
    photograph: np.ndarray,
    heatmap: np.ndarray,
    box: tuple[int, int, int],
    fov_mask: np.ndarray | None,
    percentile: float,
    top: float | None = None,
) -> np.ndarray:
    """The normalised heatmap placed on the (already scaled) photograph's pixels."""
    strength = normalize_heatmap(heatmap, fov_mask, percentile, top).astype(np.float32)
    return _onto_photograph(strength, box, photograph.shape[:2], cv2.INTER_LINEAR)


def _mark(
    photograph: np.ndarray,
    box: tuple[int, int, int],
    crop_side: int,
    candidates: np.ndarray | None,
    lesion_mask: np.ndarray | None,
) -> np.ndarray:
    """A copy of ``photograph`` with the lesion mask outlined and the candidates ringed."""
    marked = photograph.copy()
    top, left, side = box
    pixel = side / crop_side  # photograph pixels per crop pixel
    if lesion_mask is not None:
        mapped = _onto_photograph(
            (np.asarray(lesion_mask) > 0).astype(np.uint8), box, marked.shape[:2],
            cv2.INTER_NEAREST,
        )  # fmt: skip
        contours, _ = cv2.findContours(mapped, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(marked, contours, -1, LESION_COLOUR, 2, cv2.LINE_8)
    if candidates is not None:
        radius = max(6, round(4 * pixel))
        thickness = max(1, round(radius / 6))
        for rank, (row, column) in enumerate(np.asarray(candidates).reshape(-1, 2), start=1):
            centre = (round(left + (column + 0.5) * pixel), round(top + (row + 0.5) * pixel))
            cv2.circle(marked, centre, radius, CANDIDATE_COLOUR, thickness, cv2.LINE_AA)
            label = (centre[0] + radius, centre[1] - radius)
            cv2.putText(
                marked, str(rank), label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 + radius / 40,
                CANDIDATE_COLOUR, thickness, cv2.LINE_AA,
            )  # fmt: skip
    return marked


def _colour_scale(
    height: int, colormap: str, labels: tuple[str, str] = ("high", "low")
) -> np.ndarray:
    """A vertical colour bar, high at the top, labelled, on white: uint8 (height, W, 3)."""
    scale = np.full((height, _SCALE_WIDTH, 3), 255, np.uint8)
    margin = min(24, height // 4)
    values = np.linspace(1.0, 0.0, max(height - 2 * margin, 1))
    bar = (matplotlib.colormaps[colormap](values)[:, :3] * 255).astype(np.uint8)
    scale[margin : margin + values.size, 8:28] = bar[:, np.newaxis, :]
    font, ink = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    cv2.putText(scale, labels[0], (30, margin + 12), font, 0.45, ink, 1, cv2.LINE_AA)
    cv2.putText(scale, labels[1], (30, margin + values.size - 2), font, 0.45, ink, 1, cv2.LINE_AA)
    return scale


def photograph_panel(
    photograph: np.ndarray,
    heatmap: np.ndarray,
    box: tuple[int, int, int],
    fov_mask: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    lesion_mask: np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    percentile: float = DEFAULT_PERCENTILE,
    colormap: str = DEFAULT_COLORMAP,
    max_side: int = READABLE_SIDE,
    min_side: int = MIN_READABLE_SIDE,
    top: float | None = None,
) -> np.ndarray:
    """The plain photograph | the heatmap over it | a colour scale, side by side (uint8 RGB).

    See `heatmap_on_photograph` for the arguments; ``alpha``, ``percentile`` and
    ``colormap`` as in `heatmap_overlay`, ``top`` as in `normalize_heatmap` (the scale is
    then labelled 0 to ``top``). ``candidates`` (K, 2) are (row, column) positions in the
    (S, S) crop, ringed in `CANDIDATE_COLOUR` and numbered 1..K on the overlay;
    ``lesion_mask`` (S, S) is outlined there in `LESION_COLOUR`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"photograph_panel: alpha must be in [0, 1], got {alpha}")
    heatmap = np.asarray(heatmap)
    for name, crop_map in (("fov_mask", fov_mask), ("lesion_mask", lesion_mask)):
        if crop_map is not None and np.shape(crop_map) != heatmap.shape:
            raise ValueError(
                f"photograph_panel: {name} shape {np.shape(crop_map)} does not match the "
                f"heatmap's {heatmap.shape}"
            )
    photo, box = _scaled(np.asarray(photograph), box, max_side, min_side)  # resized once
    strength = _strength_on(photo, heatmap, box, fov_mask, percentile, top)
    overlay = _blend(photo, strength, alpha, colormap)
    overlay = _mark(overlay, box, heatmap.shape[0], candidates, lesion_mask)
    gap = np.full((photo.shape[0], _GAP, 3), 255, np.uint8)
    labels = ("high", "low") if top is None else (f"{top:g}", "0")
    scale = _colour_scale(photo.shape[0], colormap, labels)
    return np.hstack([photo, gap, overlay, gap, scale])


def save_image(path: str, image: np.ndarray) -> None:
    """Write a uint8 RGB image as a PNG at ``path`` (its folder created)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image")


def save_overlay(
    path: str,
    image: np.ndarray,
    heatmap: np.ndarray,
    fov_mask: np.ndarray | None = None,
    **options,
) -> None:
    """Write `heatmap_overlay(image, heatmap, fov_mask, **options)` as a PNG at ``path``."""
    save_image(path, heatmap_overlay(image, heatmap, fov_mask, **options))
