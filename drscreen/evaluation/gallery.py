"""The report's heatmap gallery: which cases to show, and their heatmaps computed again.

With lesion masks the cases are chosen on the first lesion group or type that has lesions
(`streaming.LesionAccumulator.gallery_ids`: best and worst relevance mass, false positives,
misses); without, by the referable-DR prediction. Only the chosen images go through the model
again, so the stream never keeps heatmaps. Each case also comes as a panel on its original
photograph (`drscreen.heatmaps.overlay.photograph_panel`, as ``drscreen predict`` draws it:
the heatmap mapped back at the photograph's resolution, candidates ringed, the lesion mask
outlined); a ``drscreen prepare`` folder holds only the crops, so there the crop stands in.
A probability map (the lesion student's) is drawn on a fixed 0-1 scale with its probable
lesions ringed (`drscreen.evaluation.lesion_student.probable_lesions`).
"""

import dataclasses

import numpy as np

from drscreen.data.fundus import crop_to_field_of_view_box
from drscreen.data.image_io import ImageError, load_rgb
from drscreen.data.lesions import LESION_TYPES, REFERABLE_GRADE
from drscreen.data.sources import Source, only_images
from drscreen.evaluation import figures, heatmap_quality, streaming
from drscreen.evaluation.lesion_student import probable_lesions
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.evaluation.runner import HeatmapFunction, RunnerConfig, RunResult, heatmaps_of
from drscreen.heatmaps.overlay import photograph_panel

GALLERY_KINDS = 4
LESION_GALLERY_TITLES = {
    "best": "best (highest relevance mass)",
    "worst": "worst (lowest relevance mass)",
    "false_positive": "false positive (no lesion, highest heatmap max)",
    "miss": "miss (lesions, lowest heatmap max)",
}


def _gallery_targets() -> dict[str, tuple[str, ...]]:
    targets = dict(streaming.DEFAULT_GROUPS)
    targets.update({lesion: (lesion,) for lesion in LESION_TYPES})
    return targets


def _gallery_picks(
    run_result: RunResult, method: str, cases: int
) -> tuple[list[tuple[str, str]], str | None]:
    """(title prefix, image id) of the gallery's cases and the lesion target they show."""
    per_kind = max(1, cases // GALLERY_KINDS)
    accumulator = run_result.methods[method].lesions
    if accumulator is not None and accumulator.count:
        found = accumulator.metrics()
        for target in _gallery_targets():
            if found.get(target, {}).get("images_with_lesion"):
                ids = accumulator.gallery_ids(target, per_kind)
                picks = [
                    (LESION_GALLERY_TITLES[kind], image_id)
                    for kind, chosen in ids.items()
                    for image_id in chosen
                ]
                return picks[:cases], target
    arrays = run_result.screening.arrays()
    graded = np.flatnonzero(arrays["grades"] >= 0)
    if graded.size == 0:
        return [], None
    order = graded[np.argsort(arrays["predictions"][graded], kind="stable")]
    positives = [i for i in order if arrays["grades"][i] >= REFERABLE_GRADE]
    negatives = [i for i in order if arrays["grades"][i] < REFERABLE_GRADE]
    kinds = [
        ("referable, highest ŷ", positives[::-1]),
        ("false positive (not referable, highest ŷ)", negatives[::-1]),
        ("miss (referable, lowest ŷ)", positives),
        ("not referable, lowest ŷ", negatives),
    ]
    picks = [
        (title, str(arrays["image_ids"][i])) for title, indices in kinds for i in indices[:per_kind]
    ]
    return picks[:cases], None


@dataclasses.dataclass(frozen=True)
class PhotographCase:
    """One gallery case drawn on its photograph.

    Attributes
    ----------
    panel:
        uint8 RGB `photograph_panel`: photograph | heatmap, candidates, lesion outline | scale.
    title:
        Caption: what the case is, its image id and figures.
    """

    panel: np.ndarray
    title: str


def _photograph_and_box(
    path: str | None, crop: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int], str]:
    """The original photograph and the square the model saw, else the crop itself (and why)."""
    side = crop.shape[0]
    if path:
        try:
            photograph = load_rgb(path)
            _, _, box = crop_to_field_of_view_box(photograph, side)
            return photograph, tuple(int(value) for value in box.numpy()), ""
        except (ImageError, OSError) as error:
            note = f"the model's crop ({path}: {error})"
    else:
        note = "the model's crop (a prepare folder keeps no original photograph)"
    image = np.clip(np.rint(np.asarray(crop, np.float64)), 0, 255).astype(np.uint8)
    return image, (0, 0, side), note


def _photograph_case(
    batch: dict, index: int, heatmap: np.ndarray, mask, title: str, probability: bool
):
    paths = batch.get("path")
    path = None if paths is None else paths[index]
    if isinstance(path, bytes):
        path = path.decode()
    photograph, box, note = _photograph_and_box(path, batch["image"][index])
    fov = batch["mask"][index] > 0.5
    if probability:
        marks, top = probable_lesions(heatmap, fov), 1.0
    else:
        marks, top = candidates_to_mark(heatmap, fov), None
    panel = photograph_panel(photograph, heatmap, box, fov, marks, lesion_mask=mask, top=top)
    return PhotographCase(panel, f"{title}; shown on {note}" if note else title)


def gallery_cases(
    source: Source,
    run_result: RunResult,
    method: str,
    heatmap_fn: HeatmapFunction,
    config: RunnerConfig,
    cases: int,
    probability: bool = False,
) -> tuple[list[figures.GalleryCase], list[PhotographCase], str | None]:
    """Best/worst cases, false positives and misses, their heatmaps computed again.

    With lesion masks the cases are chosen by `LesionAccumulator.gallery_ids` on the first
    lesion group or type with lesions (returned last, its masks outlined); otherwise by
    the referable-DR prediction (last value None). The same cases come twice: at the model's
    crop (for `figures.plot_gallery`) and on their photographs. ``probability``: the maps are
    probabilities (the lesion student's), drawn on a 0-1 scale, probable lesions ringed.
    """
    picks, target = _gallery_picks(run_result, method, cases)
    if not picks:
        return [], [], None
    wanted = {image_id for _, image_id in picks}
    chosen = only_images(source, wanted)
    members = _gallery_targets()[target] if target is not None else ()
    shown: dict[str, figures.GalleryCase] = {}
    on_photographs: dict[str, PhotographCase] = {}
    for batch, grades, heatmaps in heatmaps_of(chosen, heatmap_fn, config):
        for i, image_id in enumerate(batch["image_id"]):
            masks = batch["lesion_masks"][i] if "lesion_masks" in batch else {}
            annotated = [masks[m] for m in members if m in masks]
            mask = np.logical_or.reduce(annotated) if annotated else None
            details = [f"ŷ {grades[i]:.2f}"]
            if batch["grade"][i] >= 0:
                details.insert(0, f"grade {int(batch['grade'][i])}")
            if mask is not None and mask.any():
                mass = heatmap_quality.relevance_mass(heatmaps[i], mask, batch["mask"][i])
                details.append(f"relevance mass {mass:.2f}")
            shown[image_id] = figures.GalleryCase(
                batch["image"][i], heatmaps[i], mask, ", ".join(details)
            )
            on_photographs[image_id] = _photograph_case(
                batch, i, heatmaps[i], mask, ", ".join(details), probability
            )
    return (
        [
            dataclasses.replace(
                shown[image_id], title=f"{title}\n{image_id}: {shown[image_id].title}"
            )
            for title, image_id in picks
        ],
        [
            dataclasses.replace(
                on_photographs[image_id],
                title=f"{title}: {image_id} ({on_photographs[image_id].title})",
            )
            for title, image_id in picks
        ],
        target,
    )
