"""Accumulators that gather per-image results batch by batch, never holding the dataset.

Screening keeps grades, predictions and ids (a few numbers per image). Lesion evaluation
reduces each heatmap as it arrives to its candidates' scores and matches, its image score,
relevance mass and pointing-game outcome; heatmaps themselves are dropped. Every
accumulator exposes `count` so the caller can report progress.
"""

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from drscreen.data.lesions import BRIGHT_LESIONS, LESION_TYPES, RED_LESIONS
from drscreen.evaluation import heatmap_quality, lesions, screening

DEFAULT_GROUPS = {
    "red_lesions": RED_LESIONS,
    "bright_lesions": BRIGHT_LESIONS,
    "all_lesions": LESION_TYPES,
}
"""Lesion groups evaluated besides each type: a group's mask is the union of its members'."""
DIAGNOSTIC_TARGETS = {
    "red_lesions_ignoring_bright": ("red_lesions", "bright_lesions"),
    "bright_lesions_ignoring_red": ("bright_lesions", "red_lesions"),
}
"""A diagnostic, not a result: a group's FROC with the candidates that hit only the other
group's lesions ignored (`lesions.ignore_candidates`). One map scored against one lesion type
counts its peaks on the other type as false positives; the gap between a group's FROC and
its diagnostic is how much of that figure was the protocol."""


class ScreeningAccumulator:
    """Collects grades, predicted regressions ŷ and ids of evaluated images."""

    def __init__(self):
        self._grades: list[np.ndarray] = []
        self._predictions: list[np.ndarray] = []
        self._patient_ids: list[np.ndarray] = []
        self._image_ids: list[np.ndarray] = []

    @property
    def count(self) -> int:
        """Images added so far."""
        return sum(g.size for g in self._grades)

    def add(
        self,
        grades: np.ndarray,
        predictions: np.ndarray,
        image_ids: Sequence[str],
        patient_ids: Sequence[str] | None = None,
    ) -> None:
        """Append one batch; `patient_ids` defaults to the image ids."""
        grades = np.asarray(grades).astype(np.int64).ravel()
        predictions = np.asarray(predictions, dtype=np.float64).ravel()
        image_ids = np.asarray(image_ids, dtype=str).ravel()
        patient_ids = image_ids if patient_ids is None else np.asarray(patient_ids, dtype=str)
        sizes = {grades.size, predictions.size, image_ids.size, patient_ids.size}
        if len(sizes) != 1:
            raise ValueError(
                f"batch sizes differ: {grades.size} grades, {predictions.size} predictions, "
                f"{image_ids.size} image ids, {patient_ids.size} patient ids"
            )
        self._grades.append(grades)
        self._predictions.append(predictions)
        self._image_ids.append(image_ids)
        self._patient_ids.append(patient_ids.ravel())

    def arrays(self) -> dict[str, np.ndarray]:
        """`grades`, `predictions`, `image_ids` and `patient_ids` of all images added."""
        if not self._grades:
            raise ValueError("no image was added")
        return {
            "grades": np.concatenate(self._grades),
            "predictions": np.concatenate(self._predictions),
            "image_ids": np.concatenate(self._image_ids),
            "patient_ids": np.concatenate(self._patient_ids),
        }


class LesionAccumulator:
    """Reduces (heatmap, lesion masks) pairs to lesion-level and heatmap-quality results.

    Evaluated targets are each lesion type and each group of types (red, bright, all lesions),
    a group's mask being the union of its members' masks. An image counts for a target when
    its masks include that type (for a group: at least one member); a missing type means
    "not annotated", while an all-zero mask means "annotated, absent".

    Parameters
    ----------
    lesion_types:
        Types to evaluate one by one.
    groups:
        Name to member types, evaluated on the union of the members' masks.
    candidate_config:
        How candidates are cut from heatmaps (default `CandidateConfig()`).
    pointing_tolerance_px:
        Tolerance of the pointing game.
    """

    def __init__(
        self,
        lesion_types: Sequence[str] = LESION_TYPES,
        groups: Mapping[str, Sequence[str]] = DEFAULT_GROUPS,
        candidate_config: lesions.CandidateConfig | None = None,
        pointing_tolerance_px: int = 3,
    ):
        self._targets = {name: (name,) for name in lesion_types}
        self._targets.update({name: tuple(members) for name, members in groups.items()})
        self._candidate_config = candidate_config or lesions.CandidateConfig()
        self._tolerance = pointing_tolerance_px
        self._image_ids: list[str] = []
        self._candidates = 0
        self._matches: dict[str, list[lesions.MatchedCandidates]] = {t: [] for t in self._targets}
        self._diagnostics = {
            name: pair
            for name, pair in DIAGNOSTIC_TARGETS.items()
            if all(target in self._targets for target in pair)
        }
        self._diagnostic_matches: dict[str, list[lesions.MatchedCandidates]] = {
            name: [] for name in self._diagnostics
        }
        # Per target, per annotated image: (image id, image score, lesion present,
        # relevance mass, pointing-game hit); the last two are NaN without lesion.
        self._images: dict[str, list[tuple[str, float, bool, float, float]]] = {
            t: [] for t in self._targets
        }

    @property
    def count(self) -> int:
        """Images added so far."""
        return len(self._image_ids)

    @property
    def candidates(self) -> int:
        """Candidates extracted so far."""
        return self._candidates

    @property
    def targets(self) -> tuple[str, ...]:
        """Lesion types and groups evaluated."""
        return tuple(self._targets)

    def add(
        self,
        image_id: str,
        heatmap: np.ndarray,
        lesion_masks: Mapping[str, np.ndarray],
        fov: np.ndarray | None = None,
    ) -> None:
        """Reduce one image's (H, W) heatmap against its (H, W) lesion masks.

        The heatmap's candidates, its image score (the FOV maximum of the heatmap the
        candidates come from, smoothed as `CandidateConfig.sigma` says) and
        `heatmap_quality.heatmap_peaks` (relevance mass and pointing game, on the heatmap
        as given) are computed once; each target then costs a mask union and a match.
        """
        heatmap = np.asarray(heatmap, dtype=np.float32)
        inside = lesions.field_of_view(heatmap, fov)
        candidates = lesions.extract_candidates(heatmap, inside, self._candidate_config)
        score = candidates.image_score
        peaks = heatmap_quality.heatmap_peaks(heatmap, inside, self._tolerance)
        binary = {name: np.asarray(mask) > 0 for name, mask in lesion_masks.items()}
        self._candidates += candidates.scores.size
        matched: dict[str, lesions.MatchedCandidates] = {}
        for target, members in self._targets.items():
            annotated = [binary[m] for m in members if m in binary]
            if not annotated:
                continue
            mask = annotated[0] if len(annotated) == 1 else np.logical_or.reduce(annotated)
            matched[target] = lesions.match_candidates(candidates, mask, inside)
            self._matches[target].append(matched[target])
            present = bool(np.any(mask & inside))
            mass = hit = float("nan")
            if present:
                mass = peaks.relevance_mass(mask)
                hit = float(peaks.pointing_game(mask))
            self._images[target].append((image_id, score, present, mass, hit))
        for name, (target, other) in self._diagnostics.items():
            if target in matched:  # an image without the other group annotated ignores nothing
                ignored = matched[other].hits if other in matched else np.zeros(0, bool)
                self._diagnostic_matches[name].append(
                    lesions.ignore_candidates(matched[target], ignored)
                )
        self._image_ids.append(image_id)

    def add_batch(
        self,
        image_ids: Sequence[str],
        heatmaps: np.ndarray,
        lesion_masks: Sequence[Mapping[str, np.ndarray]],
        fovs: np.ndarray | None = None,
    ) -> None:
        """`add` each image of a batch of (N, H, W) heatmaps."""
        if not len(image_ids) == len(heatmaps) == len(lesion_masks):
            raise ValueError(
                f"batch sizes differ: {len(image_ids)} ids, {len(heatmaps)} heatmaps, "
                f"{len(lesion_masks)} mask sets"
            )
        for i, image_id in enumerate(image_ids):
            self.add(image_id, heatmaps[i], lesion_masks[i], None if fovs is None else fovs[i])

    def image_scores(self) -> dict[str, float]:
        """Image id -> image score (the FOV maximum of the map its candidates come from), for
        every image added with at least one annotated target."""
        return {
            image_id: score for entries in self._images.values() for image_id, score, *_ in entries
        }

    def froc(self, target: str) -> lesions.FrocCurve:
        """FROC curve of one lesion type or group."""
        return lesions.froc_curve(self._matches[target])

    def _columns(self, target: str) -> tuple[np.ndarray, ...]:
        ids, scores, present, mass, hit = zip(*self._images[target], strict=True)
        return np.array(ids), np.array(scores), np.array(present), np.array(mass), np.array(hit)

    def metrics(self) -> dict:
        """Per target: FROC score and points, image-level AUC, relevance mass, pointing game.

        Targets without annotated images are left out. A value that is undefined on these
        images is None and ``undefined`` maps its key to the reason: the image AUC without
        images on both sides, relevance mass and pointing game without lesions, relevance
        mass when every heatmap is zero in the FOV. Relevance mass averages the images with
        lesions whose heatmap is not zero there (``zero_heatmap_images`` counts the others);
        the pointing game counts zero heatmaps as misses (see `heatmap_quality.pointing_game`).
        """
        result: dict = {}
        for target in self._targets:
            if not self._images[target]:
                continue
            _, scores, present, mass, hit = self._columns(target)
            with_lesion = int(present.sum())
            defined_mass = present & ~np.isnan(mass)
            entry: dict = {
                "images": int(present.size),
                "images_with_lesion": with_lesion,
                "zero_heatmap_images": with_lesion - int(defined_mass.sum()),
            }
            undefined: dict[str, str] = {}
            if 0 < with_lesion < present.size:
                entry["image_auc"] = screening.roc_auc(present, scores)
            else:
                entry["image_auc"] = None
                side = "with" if with_lesion == 0 else "without"
                undefined["image_auc"] = f"no annotated image {side} this lesion type"
            if with_lesion:
                entry["pointing_game"] = float(hit[present].mean())
            else:
                entry["pointing_game"] = None
                undefined["pointing_game"] = "no image with this lesion type"
            if defined_mass.any():
                entry["relevance_mass"] = float(mass[defined_mass].mean())
            else:
                entry["relevance_mass"] = None
                undefined["relevance_mass"] = (
                    "no image with this lesion type"
                    if not with_lesion
                    else "the heatmap is zero in the field of view of every image with lesions"
                )
            if undefined:
                entry["undefined"] = undefined
            if with_lesion:
                curve = self.froc(target)
                entry["lesions"] = curve.lesions
                entry["froc_score"] = curve.score()
                entry["sensitivity_at_fp"] = {
                    f"{rate:g}": curve.sensitivity_at(rate) for rate in lesions.FP_RATES
                }
                entry["froc"] = {
                    "false_positives_per_image": curve.false_positives_per_image.tolist(),
                    "sensitivity": curve.sensitivity.tolist(),
                }
            result[target] = entry
        for name, matches in self._diagnostic_matches.items():
            if matches and sum(m.lesion_scores.size for m in matches):
                curve = lesions.froc_curve(matches)
                result[name] = {
                    "diagnostic": "not a result: candidates on the other lesion group ignored",
                    "lesions": curve.lesions,
                    "froc_score": curve.score(),
                    "sensitivity_at_fp": {
                        f"{rate:g}": curve.sensitivity_at(rate) for rate in lesions.FP_RATES
                    },
                }
        return result

    def gallery_ids(self, target: str, per_kind: int = 2) -> dict[str, list[str]]:
        """Image ids worth showing for one target, so the caller recomputes only their heatmaps.

        `best` / `worst`: images with lesions with the highest / lowest relevance mass
        (images whose heatmap is zero, without a mass, are left out); `false_positive`:
        lesion-free images with the highest image score; `miss`: images with lesions with
        the lowest image score.
        """
        ids, scores, present, mass, _ = self._columns(target)
        with_lesion, without = np.flatnonzero(present), np.flatnonzero(~present)
        with_mass = np.flatnonzero(present & ~np.isnan(mass))

        def pick(indices: np.ndarray, key: np.ndarray, highest: bool) -> list[str]:
            order = np.argsort(key[indices], kind="stable")
            chosen = order[::-1] if highest else order
            return ids[indices[chosen[:per_kind]]].tolist()

        return {
            "best": pick(with_mass, mass, highest=True),
            "worst": pick(with_mass, mass, highest=False),
            "false_positive": pick(without, scores, highest=True),
            "miss": pick(with_lesion, scores, highest=False),
        }


class PerturbationAccumulator:
    """Collects deletion/insertion curves batch by batch (a few numbers per image)."""

    def __init__(
        self,
        score_fn: Callable[[np.ndarray], np.ndarray],
        config: heatmap_quality.PerturbationConfig | None = None,
    ):
        self._score_fn = score_fn
        self._config = config or heatmap_quality.PerturbationConfig()
        self._deletion: list[np.ndarray] = []
        self._insertion: list[np.ndarray] = []
        self._fractions = np.linspace(0.0, 1.0, self._config.steps + 1)

    @property
    def count(self) -> int:
        """Images added so far."""
        return sum(d.shape[0] for d in self._deletion)

    def add(self, images: np.ndarray, heatmaps: np.ndarray) -> None:
        """Compute and keep the curves of one batch of (N, H, W, C) images."""
        curves = heatmap_quality.perturbation_curves(images, heatmaps, self._score_fn, self._config)
        self._deletion.append(curves.deletion)
        self._insertion.append(curves.insertion)

    def metrics(self) -> dict:
        """Mean deletion/insertion AUC and the mean curves."""
        if not self._deletion:
            raise ValueError("no image was added")
        deletion, insertion = np.concatenate(self._deletion), np.concatenate(self._insertion)
        return {
            "images": int(deletion.shape[0]),
            "baseline": self._config.baseline,
            "deletion_auc": float(np.trapezoid(deletion, self._fractions, axis=1).mean()),
            "insertion_auc": float(np.trapezoid(insertion, self._fractions, axis=1).mean()),
            "fractions": self._fractions.tolist(),
            "mean_deletion_curve": deletion.mean(axis=0).tolist(),
            "mean_insertion_curve": insertion.mean(axis=0).tolist(),
        }
