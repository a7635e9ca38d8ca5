"""Lesion-level evaluation of heatmaps: candidates, their matching to lesion masks, FROC.

Candidates are the 8-connected components of the heatmap thresholded inside the field of
view (FOV); each is scored by its maximum heatmap value. The threshold is either a fixed
fraction of the image's maximum heatmap value in the FOV (`relative_threshold`, default
0.5: scale-free, so heatmap methods with different ranges compare fairly) or, when
`absolute_threshold` is set, one global level for every image. FROC curves then sweep the
candidate score. A candidate is a true positive when it overlaps a ground-truth lesion (an
8-connected component of the lesion mask); each lesion is detected at most once, at the
highest score among the candidates overlapping it.
"""

import dataclasses

import cv2
import numpy as np

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclasses.dataclass(frozen=True)
class CandidateConfig:
    """How candidates are cut from a heatmap.

    Attributes
    ----------
    relative_threshold:
        Keep pixels with H >= relative_threshold * max(H in FOV).
    absolute_threshold:
        When set, keep pixels with H >= absolute_threshold instead (same level everywhere).
    """

    relative_threshold: float = 0.5
    absolute_threshold: float | None = None

    def __post_init__(self):
        if not 0.0 < self.relative_threshold <= 1.0:
            raise ValueError(f"relative_threshold must be in (0, 1], got {self.relative_threshold}")


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Lesion candidates of one heatmap.

    Attributes
    ----------
    label_map:
        (H, W) int32, 0 for background and c + 1 for pixels of candidate c.
    scores:
        (C,) maximum heatmap value of each candidate.
    """

    label_map: np.ndarray
    scores: np.ndarray


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


def extract_candidates(
    heatmap: np.ndarray, fov: np.ndarray | None = None, config: CandidateConfig = CandidateConfig()
) -> Candidates:
    """Connected components (8-connectivity) of the thresholded heatmap inside the FOV."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    inside = field_of_view(heatmap, fov)
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
    return Candidates(label_map, scores[1:])


def lesion_components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Ground-truth lesions: (count, (H, W) int32 map, 0 background, l + 1 for lesion l)."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    count, label_map = cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)
    return count - 1, label_map


def match_candidates(
    candidates: Candidates, lesion_mask: np.ndarray, fov: np.ndarray | None = None
) -> MatchedCandidates:
    """Match candidates to the lesions of one mask (lesion pixels outside the FOV ignored)."""
    shape = candidates.label_map.shape
    mask = _check_map("lesion mask", lesion_mask, shape) > 0
    if fov is not None:
        mask &= _check_map("fov", fov, shape).astype(bool)
    if not mask.any():  # no lesion: every candidate is a false positive
        return MatchedCandidates(
            candidates.scores, np.zeros(candidates.scores.size, dtype=bool), np.empty(0)
        )
    lesions, lesion_map = lesion_components(mask)
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
    candidate_index, lesion_index = candidate_index[order][first], lesion_index[order][first]
    hits = np.zeros(candidates.scores.size, dtype=bool)
    hits[candidate_index] = True
    lesion_scores = np.full(lesions, -np.inf)
    np.maximum.at(lesion_scores, lesion_index, candidates.scores[candidate_index])
    return MatchedCandidates(candidates.scores, hits, lesion_scores)


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
