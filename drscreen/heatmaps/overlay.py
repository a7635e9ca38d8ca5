"""Heatmap overlays: a colour-mapped heatmap alpha-blended onto the fundus photograph.

The heatmap is normalised robustly (divided by a high percentile of its values inside the
field of view, then clipped to [0, 1]) so that a few extreme pixels do not wash the rest
out; the blend weight grows with the heatmap value, so unremarkable regions show the
photograph unchanged.
"""

import os

import cv2
import matplotlib
import numpy as np

DEFAULT_PERCENTILE = 99.0
DEFAULT_ALPHA = 0.6
DEFAULT_COLORMAP = "inferno"


def normalize_heatmap(
    heatmap: np.ndarray, fov_mask: np.ndarray | None = None, percentile: float = DEFAULT_PERCENTILE
) -> np.ndarray:
    """|heatmap| / (its ``percentile``-th percentile inside the FOV), clipped to [0, 1].

    Pixels outside ``fov_mask`` are 0. An all-zero heatmap stays all zero.
    """
    values = np.abs(np.asarray(heatmap, dtype=np.float64))
    inside = np.ones(values.shape, bool) if fov_mask is None else np.asarray(fov_mask) > 0.5
    if inside.shape != values.shape:
        raise ValueError(
            f"fov_mask shape {inside.shape} does not match heatmap shape {values.shape}"
        )
    values = np.where(inside, values, 0.0)
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
    colours = matplotlib.colormaps[colormap](strength)[..., :3] * 255.0
    weight = (alpha * strength)[..., np.newaxis]
    blended = (1.0 - weight) * image.astype(np.float32) + weight * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def save_overlay(
    path: str,
    image: np.ndarray,
    heatmap: np.ndarray,
    fov_mask: np.ndarray | None = None,
    **options,
) -> None:
    """Write `heatmap_overlay(image, heatmap, fov_mask, **options)` as a PNG at ``path``."""
    overlay = heatmap_overlay(image, heatmap, fov_mask, **options)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the overlay image")
