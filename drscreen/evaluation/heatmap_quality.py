"""Threshold-free heatmap quality: relevance mass, pointing game, deletion/insertion curves.

Relevance mass and the pointing game compare a heatmap with lesion masks; deletion and
insertion (Petsiuk et al., "RISE", BMVC 2018) measure how the model's score changes when the
most relevant pixels are progressively replaced by a blurred (or mean) copy of the image, or
restored from it. The model enters only as a callable `score_fn(images) -> scores`.
"""

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

from drscreen.evaluation.lesions import field_of_view

BASELINES = ("blur", "mean")


@dataclasses.dataclass(frozen=True)
class PerturbationConfig:
    """How deletion/insertion curves are sampled.

    Attributes
    ----------
    steps:
        The curves have `steps + 1` points, at pixel fractions 0, 1/steps, ..., 1.
    baseline:
        "blur" (Gaussian blur of the image) or "mean" (per-channel mean colour).
    blur_sigma:
        Standard deviation in pixels of the Gaussian blur.
    """

    steps: int = 16
    baseline: str = "blur"
    blur_sigma: float = 8.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline {self.baseline!r} is not one of {BASELINES}")


@dataclasses.dataclass(frozen=True)
class PerturbationCurves:
    """Model scores while pixels are deleted (or inserted) in decreasing relevance order.

    Attributes
    ----------
    fractions:
        (S,) fraction of pixels replaced (deletion) or restored (insertion).
    deletion, insertion:
        (N, S) model score of each image at each fraction.
    deletion_auc, insertion_auc:
        (N,) trapezoidal area under each curve over fractions in [0, 1]: low deletion and
        high insertion areas mean the heatmap ranks pixels by their effect on the score.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray


@dataclasses.dataclass(frozen=True)
class HeatmapPeaks:
    """What relevance mass and the pointing game need of one heatmap, computed once so that
    many lesion masks (types, groups) are scored against it cheaply.

    Build with `heatmap_peaks`.

    Attributes
    ----------
    magnitude:
        (H, W) float64 |H| inside the FOV, 0 outside.
    total:
        Sum of `magnitude`.
    pointed:
        (H, W) bool, the pixels within the tolerance disc of a maximum of H in the FOV; all
        False when H has no positive value in the FOV.
    """

    magnitude: np.ndarray
    total: float
    pointed: np.ndarray

    def _mask(self, lesion_mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(lesion_mask) > 0
        if mask.shape != self.magnitude.shape:
            raise ValueError(f"lesion mask has shape {mask.shape}, expected {self.magnitude.shape}")
        return mask

    def relevance_mass(self, lesion_mask: np.ndarray) -> float:
        """Fraction of the |H| mass in the FOV inside the mask; NaN when H is 0 in the FOV."""
        mask = self._mask(lesion_mask)
        return float(self.magnitude[mask].sum() / self.total) if self.total > 0 else float("nan")

    def pointing_game(self, lesion_mask: np.ndarray) -> bool:
        """Whether a maximum of H in the FOV lies within the tolerance of a mask pixel."""
        return bool(np.any(self.pointed & self._mask(lesion_mask)))


def heatmap_peaks(
    heatmap: np.ndarray, fov: np.ndarray | None = None, tolerance_px: int = 3
) -> HeatmapPeaks:
    """Summarise one (H, W) heatmap for `relevance_mass` and `pointing_game` on many masks.

    The maxima of H in the FOV (all tied pixels) are dilated by a disc of radius
    `tolerance_px`; a lesion pixel in that zone is within tolerance of a maximum, since the
    disc is symmetric. A heatmap with no positive value in the FOV (e.g. all zero, or an
    empty FOV) points nowhere: the argmax of a constant map is an accident of raster order,
    not a location.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    inside = field_of_view(heatmap, fov)
    magnitude = np.abs(heatmap) * inside
    peak = np.max(heatmap, where=inside, initial=-np.inf)
    pointed = ((heatmap == peak) & inside).astype(np.uint8)
    if not peak > 0:
        pointed[:] = 0
    elif tolerance_px > 0:
        disc = cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1)
        )
        pointed = cv2.dilate(pointed, disc)
    return HeatmapPeaks(magnitude, float(magnitude.sum()), pointed > 0)


def relevance_mass(
    heatmap: np.ndarray, lesion_mask: np.ndarray, fov: np.ndarray | None = None
) -> float:
    """Fraction of the |H| mass in the FOV that lies in the lesion mask (NaN if H is 0)."""
    return heatmap_peaks(heatmap, fov, tolerance_px=0).relevance_mass(lesion_mask)


def pointing_game(
    heatmap: np.ndarray,
    lesion_mask: np.ndarray,
    fov: np.ndarray | None = None,
    tolerance_px: int = 3,
) -> bool:
    """Whether the heatmap's maximum in the FOV lies within `tolerance_px` of a lesion pixel.

    Ties for the maximum count as a hit when any tied pixel is within tolerance. A heatmap
    with no positive value in the FOV (e.g. all zero) points nowhere: a miss, so a method
    that returns empty heatmaps scores 0 rather than hitting by the accident of an argmax.
    """
    if fov is not None and not np.any(fov):
        raise ValueError("the field of view is empty")
    return heatmap_peaks(heatmap, fov, tolerance_px).pointing_game(lesion_mask)


def baseline_images(images: np.ndarray, config: PerturbationConfig) -> np.ndarray:
    """The images that deleted pixels are replaced by: blurred copies or mean colours."""
    images = np.asarray(images, dtype=np.float32)
    if config.baseline == "mean":
        return np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape).copy()
    return np.stack(
        [
            cv2.GaussianBlur(image, (0, 0), config.blur_sigma).reshape(image.shape)
            for image in images
        ]
    )


def perturbation_curves(
    images: np.ndarray,
    heatmaps: np.ndarray,
    score_fn: Callable[[np.ndarray], np.ndarray],
    config: PerturbationConfig = PerturbationConfig(),
) -> PerturbationCurves:
    """Deletion and insertion curves of a batch of images under their heatmaps.

    Parameters
    ----------
    images:
        (N, H, W, C) images as the model takes them.
    heatmaps:
        (N, H, W) relevance; pixels are ranked by decreasing value (ties in raster order).
    score_fn:
        Maps (N, H, W, C) float32 images to (N,) model scores; called 2 * (steps + 1) times.
    config:
        Number of steps and baseline.
    """
    images = np.asarray(images, dtype=np.float32)
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if images.ndim != 4 or heatmaps.shape != images.shape[:3]:
        raise ValueError(
            f"images {images.shape} must be (N, H, W, C) and heatmaps {heatmaps.shape} (N, H, W)"
        )
    n, height, width = heatmaps.shape
    pixels = height * width
    order = np.argsort(-heatmaps.reshape(n, pixels), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pixels)[None, :], axis=1)
    rank = rank.reshape(n, height, width, 1)
    baseline = baseline_images(images, config)
    fractions = np.linspace(0.0, 1.0, config.steps + 1)
    deletion, insertion = [], []
    for fraction in fractions:
        selected = rank < int(round(fraction * pixels))
        deletion.append(_scores(score_fn, np.where(selected, baseline, images), n))
        insertion.append(_scores(score_fn, np.where(selected, images, baseline), n))
    deletion, insertion = np.stack(deletion, axis=1), np.stack(insertion, axis=1)
    return PerturbationCurves(
        fractions=fractions,
        deletion=deletion,
        insertion=insertion,
        deletion_auc=np.trapezoid(deletion, fractions, axis=1),
        insertion_auc=np.trapezoid(insertion, fractions, axis=1),
    )


def _scores(score_fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, n: int) -> np.ndarray:
    scores = np.asarray(score_fn(images.astype(np.float32)), dtype=np.float64).reshape(-1)
    if scores.shape != (n,):
        raise ValueError(f"score_fn returned {scores.size} scores for {n} images")
    return scores
