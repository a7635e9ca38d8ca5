"""Lesion-level evaluation of heatmaps: candidates, their matching to lesion masks, FROC.

A heatmap is first optionally smoothed inside the field of view (FOV) by a Gaussian of
`CandidateConfig.sigma` pixels (normalised by the smoothed FOV, so the border is not dimmed).
Two rules then cut candidates from it:

- ``peaks`` (default): the local maxima of the heatmap (3 x 3 neighbourhood, positive
  values inside the FOV), the `max_candidates` highest per image, each scored by its value. A
  peak detects a lesion when it lies within `tolerance_px` of the lesion's mask; it detects at
  most one lesion, the nearest. Every lesion that holds a local maximum can be reached, so
  the FROC curve can climb to high sensitivity.
- ``components`` (the paper's rule): the 8-connected components of the heatmap thresholded
  at a fixed fraction of the image's FOV maximum (`relative_threshold`, scale-free) or at
  one global level (`absolute_threshold`), each scored by its maximum. A component detects a
  lesion it overlaps; it detects at most one lesion, the one it overlaps most, so one blob
  over the whole retina cannot detect every lesion at one false positive per image.

Ground-truth lesions are the 8-connected components of a lesion mask. Each lesion is
detected at most once, at the highest score among the candidates detecting it. FROC curves
then sweep the candidate score.

`candidates_to_mark` picks the few peaks an overlay rings for a grader.
"""

import dataclasses

import cv2
import numpy as np

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


CANDIDATE_RULES = ("peaks", "components")


@dataclasses.dataclass(frozen=True)
class CandidateConfig:
    """How candidates are cut from a heatmap (see the module docstring).

    Attributes
    ----------
    rule:
        ``"peaks"`` (local maxima) or ``"components"`` (thresholded connected components).
    sigma:
        Standard deviation in pixels of the Gaussian smoothing applied first (0: none).
    max_candidates:
        ``peaks``: the highest local maxima kept per image.
    tolerance_px:
        ``peaks``: a peak detects a lesion whose mask lies within this distance (pixels).
    relative_threshold:
        ``components``: keep pixels with H >= relative_threshold * max(H in FOV).
    absolute_threshold:
        ``components``: when set, keep pixels with H >= absolute_threshold instead (same
        level everywhere).
    """

    rule: str = "peaks"
    sigma: float = 0.0
    max_candidates: int = 100
    tolerance_px: float = 2.0
    relative_threshold: float = 0.5
    absolute_threshold: float | None = None

    def __post_init__(self):
        if self.rule not in CANDIDATE_RULES:
            raise ValueError(f"candidate rule {self.rule!r} is not one of {CANDIDATE_RULES}")
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if not self.tolerance_px >= 0:
            raise ValueError(f"tolerance_px must be >= 0, got {self.tolerance_px}")
        if not 0.0 < self.relative_threshold <= 1.0:
            raise ValueError(f"relative_threshold must be in (0, 1], got {self.relative_threshold}")


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Lesion candidates of one heatmap.

    Attributes
    ----------
    scores:
        (C,) heatmap value of each candidate (its peak, or its component's maximum).
    image_score:
        The image-level lesion score: the maximum of the (smoothed) heatmap in the FOV,
        -inf for an empty FOV.
    label_map:
        ``components``: (H, W) int32, 0 for background and c + 1 for pixels of candidate c;
        None for peaks.
    positions:
        ``peaks``: (C, 2) int (row, column) of each peak; None for components.
    tolerance_px:
        ``peaks``: detection distance to a lesion's mask.
    """

    scores: np.ndarray
    image_score: float
    label_map: np.ndarray | None = None
    positions: np.ndarray | None = None
    tolerance_px: float = 0.0


@dataclasses.dataclass(frozen=True)
class MatchedCandidates:
    """Candidates of one image matched against one lesion type's mask.

    Attributes
    ----------
    scores:
        (C,) candidate scores.
    hits:
        (C,) True where the candidate overlaps a ground-truth lesion.
    lesion_scores:
        (L,) per ground-truth lesion, the highest score of a candidate overlapping it,
        -inf when no candidate does.
    """

    scores: np.ndarray
    hits: np.ndarray
    lesion_scores: np.ndarray


@dataclasses.dataclass(frozen=True)
class FrocCurve:
    """Sensitivity against mean false positives per image, one point per score threshold.

    Attributes
    ----------
    false_positives_per_image, sensitivity, thresholds:
        (T,) points in increasing order of false positives; point t keeps candidates with
        score >= thresholds[t].
    lesions, images:
        Ground-truth lesions and images the curve was computed over.
    """

    false_positives_per_image: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray
    lesions: int
    images: int

    def sensitivity_at(self, fp_rate: float) -> float:
        """Highest sensitivity reached with at most `fp_rate` false positives per image."""
        reached = self.false_positives_per_image <= fp_rate + 1e-12
        return float(self.sensitivity[reached].max()) if reached.any() else 0.0

    def score(self, fp_rates: tuple[float, ...] = FP_RATES) -> float:
        """FROC score: mean sensitivity at `fp_rates` (1/8 to 8 FP/image by default)."""
        return float(np.mean([self.sensitivity_at(rate) for rate in fp_rates]))


def _check_map(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected the heatmap's {shape}")
    return array


def field_of_view(heatmap: np.ndarray, fov: np.ndarray | None) -> np.ndarray:
    """The FOV as a boolean (H, W) mask, all True when `fov` is None."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {heatmap.shape}")
    if fov is None:
        return np.ones(heatmap.shape, dtype=bool)
    return _check_map("fov", fov, heatmap.shape).astype(bool)


def image_score(heatmap: np.ndarray, fov: np.ndarray | None = None) -> float:
    """Image-level lesion score: max of the heatmap inside the FOV (-inf for an empty FOV)."""
    inside = field_of_view(heatmap, fov)
    return float(np.max(heatmap, where=inside, initial=-np.inf))


def smooth_heatmap(heatmap: np.ndarray, fov: np.ndarray | None, sigma: float) -> np.ndarray:
    """The heatmap blurred by a Gaussian of ``sigma`` px inside the FOV, zero outside.

    Normalised convolution: ``G * (H · FOV) / G * FOV``, so pixels near the FOV border
    average only FOV pixels. ``sigma = 0`` returns the FOV-masked heatmap unchanged.
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    inside = field_of_view(heatmap, fov)
    masked = np.where(inside, heatmap, 0.0).astype(np.float32)
    if sigma == 0:
        return masked
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    blurred = cv2.GaussianBlur(masked, (0, 0), sigma)
    return np.where(inside, blurred / np.maximum(weight, 1e-6), 0.0).astype(np.float32)


def _peaks(heatmap: np.ndarray, inside: np.ndarray, config: CandidateConfig) -> Candidates:
    neighbourhood_max = cv2.dilate(heatmap, np.ones((3, 3), np.uint8))
    rows, cols = np.nonzero(inside & (heatmap > 0) & (heatmap >= neighbourhood_max))
    values = heatmap[rows, cols].astype(np.float64)
    order = np.argsort(-values, kind="stable")[: config.max_candidates]
    return Candidates(
        scores=values[order],
        image_score=image_score(heatmap, inside),
        positions=np.stack([rows[order], cols[order]], axis=1),
        tolerance_px=config.tolerance_px,
    )


def _components(heatmap: np.ndarray, inside: np.ndarray, config: CandidateConfig) -> Candidates:
    peak = image_score(heatmap, inside)
    if config.absolute_threshold is not None:
        level = config.absolute_threshold
    elif peak > 0:
        level = config.relative_threshold * peak
    else:
        level = np.inf  # a heatmap with no positive relevance has no candidate
    foreground = (inside & (heatmap >= level)).astype(np.uint8)
    count, label_map = cv2.connectedComponents(foreground, connectivity=8, ltype=cv2.CV_32S)
    scores = np.full(count, -np.inf, dtype=np.float64)
    labelled = label_map > 0
    np.maximum.at(scores, label_map[labelled], heatmap[labelled])
    return Candidates(scores[1:], peak, label_map=label_map)


def extract_candidates(
    heatmap: np.ndarray, fov: np.ndarray | None = None, config: CandidateConfig = CandidateConfig()
) -> Candidates:
    """Candidates of one heatmap inside the FOV under ``config`` (smoothing, then the rule)."""
    inside = field_of_view(heatmap, fov)
    smoothed = smooth_heatmap(heatmap, inside, config.sigma)
    if config.rule == "peaks":
        return _peaks(smoothed, inside, config)
    return _components(smoothed, inside, config)


MARKED_CANDIDATES = 5
"""At most this many candidates are ringed on an overlay (`candidates_to_mark`)."""
MARK_SIGMA_PER_PIXEL = 4.0 / 192
"""Smoothing before marking, per heatmap pixel: the lesion benchmark chose σ = 4 px at 192 px
for the default sensitivity heatmap on its validation masks (docs/benchmark_results.md)."""
MARK_RELATIVE_LEVEL = 0.5
"""Only peaks at or above this fraction of the highest are ringed."""


def candidates_to_mark(
    heatmap: np.ndarray,
    fov: np.ndarray | None = None,
    count: int = MARKED_CANDIDATES,
    relative_level: float = MARK_RELATIVE_LEVEL,
) -> np.ndarray:
    """(K, 2) (row, column) of the strongest peaks to ring on an overlay, strongest first.

    The ``peaks`` rule after smoothing by `MARK_SIGMA_PER_PIXEL` × the heatmap's side; at
    most ``count`` peaks, each at least ``relative_level`` × the highest (none for a heatmap
    without positive relevance).
    """
    heatmap = np.asarray(heatmap, np.float32)
    sigma = MARK_SIGMA_PER_PIXEL * max(heatmap.shape)
    found = extract_candidates(
        heatmap, fov, CandidateConfig(rule="peaks", sigma=sigma, max_candidates=count)
    )
    if found.scores.size == 0:
        return np.zeros((0, 2), np.int64)
    return found.positions[found.scores >= relative_level * found.scores[0]]


def lesion_components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Ground-truth lesions: (count, (H, W) int32 map, 0 background, l + 1 for lesion l)."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    count, label_map = cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)
    return count - 1, label_map


def _disc_offsets(radius: float) -> np.ndarray:
    """(K, 2) integer (row, column) offsets within ``radius``, nearest first."""
    reach = int(np.floor(radius))
    rows, cols = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    distance = np.hypot(rows, cols).ravel()
    inside = distance <= radius + 1e-9
    order = np.argsort(distance[inside], kind="stable")
    return np.stack([rows.ravel()[inside][order], cols.ravel()[inside][order]], axis=1)


def _peak_lesions(candidates: Candidates, lesion_map: np.ndarray) -> np.ndarray:
    """(C,) index of the lesion each peak detects (its nearest within tolerance), -1 for none."""
    offsets = _disc_offsets(candidates.tolerance_px)
    height, width = lesion_map.shape
    rows = candidates.positions[:, :1] + offsets[None, :, 0]
    cols = candidates.positions[:, 1:] + offsets[None, :, 1]
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    labels = np.where(valid, lesion_map[rows.clip(0, height - 1), cols.clip(0, width - 1)], 0)
    nearest = np.argmax(labels > 0, axis=1)
    return labels[np.arange(labels.shape[0]), nearest] - 1


def _component_lesions(candidates: Candidates, lesions: int, lesion_map: np.ndarray):
    """(candidate indices, lesion indices): each overlapping candidate's most-overlapped lesion."""
    overlap = (candidates.label_map > 0) & (lesion_map > 0)
    pairs, pixels = np.unique(
        candidates.label_map[overlap].astype(np.int64) * (lesions + 1) + lesion_map[overlap],
        return_counts=True,
    )
    candidate_index, lesion_index = pairs // (lesions + 1) - 1, pairs % (lesions + 1) - 1
    # One candidate detects one lesion: the one it overlaps most (ties: the lowest label).
    # Otherwise a single heatmap blob covering the whole retina would "detect" every lesion
    # at one false positive per image.
    order = np.lexsort((lesion_index, -pixels, candidate_index))
    first = np.ones(order.size, dtype=bool)
    first[1:] = candidate_index[order][1:] != candidate_index[order][:-1]
    return candidate_index[order][first], lesion_index[order][first]


def match_candidates(
    candidates: Candidates, lesion_mask: np.ndarray, fov: np.ndarray | None = None
) -> MatchedCandidates:
    """Match candidates to the lesions of one mask (lesion pixels outside the FOV ignored)."""
    regions = candidates.label_map
    shape = np.shape(lesion_mask) if regions is None else regions.shape
    mask = _check_map("lesion mask", lesion_mask, shape) > 0
    if fov is not None:
        mask &= _check_map("fov", fov, shape).astype(bool)
    if not mask.any():  # no lesion: every candidate is a false positive
        return MatchedCandidates(
            candidates.scores, np.zeros(candidates.scores.size, dtype=bool), np.empty(0)
        )
    lesions, lesion_map = lesion_components(mask)
    if regions is not None:
        candidate_index, lesion_index = _component_lesions(candidates, lesions, lesion_map)
    else:
        detected = _peak_lesions(candidates, lesion_map)
        candidate_index = np.flatnonzero(detected >= 0)
        lesion_index = detected[candidate_index]
    hits = np.zeros(candidates.scores.size, dtype=bool)
    hits[candidate_index] = True
    lesion_scores = np.full(lesions, -np.inf)
    np.maximum.at(lesion_scores, lesion_index, candidates.scores[candidate_index])
    return MatchedCandidates(candidates.scores, hits, lesion_scores)


def ignore_candidates(matched: MatchedCandidates, ignored: np.ndarray) -> MatchedCandidates:
    """``matched`` without the candidates flagged in ``ignored`` (C,, or empty for none) that
    are not hits; its lesions unchanged.

    The lesion benchmark's diagnostic: a single map scored against one lesion type counts its
    peaks on the other type's lesions as false positives; dropping them (never the hits)
    shows how much of a per-type figure was that protocol.
    """
    ignored = np.asarray(ignored, dtype=bool)
    if ignored.size == 0:
        return matched
    keep = ~(ignored & ~matched.hits)
    return MatchedCandidates(matched.scores[keep], matched.hits[keep], matched.lesion_scores)


def froc_curve(matches: list[MatchedCandidates]) -> FrocCurve:
    """FROC curve over images, each given by its matched candidates for one lesion type."""
    if not matches:
        raise ValueError("no images to compute a FROC curve over")
    scores = np.concatenate([m.scores for m in matches])
    hits = np.concatenate([m.hits for m in matches])
    lesion_scores = np.concatenate([m.lesion_scores for m in matches])
    if lesion_scores.size == 0:
        raise ValueError("no ground-truth lesion in these images: sensitivity is undefined")
    thresholds = np.unique(scores)[::-1]
    false_positives = np.sort(scores[~hits])
    kept_false = false_positives.size - np.searchsorted(false_positives, thresholds, side="left")
    detected = np.sort(lesion_scores)
    kept_detected = detected.size - np.searchsorted(detected, thresholds, side="left")
    return FrocCurve(
        false_positives_per_image=np.concatenate([[0.0], kept_false / len(matches)]),
        sensitivity=np.concatenate([[0.0], kept_detected / lesion_scores.size]),
        thresholds=np.concatenate([[np.inf], thresholds]),
        lesions=int(lesion_scores.size),
        images=len(matches),
    )
