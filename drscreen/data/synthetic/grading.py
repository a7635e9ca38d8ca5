"""ICDR grades for synthetic eyes: per-patient correlated grades and grade <-> lesion plans.

The International Clinical DR scale, as this benchmark applies it:
0 no lesions; 1 microaneurysms only; 2 more than microaneurysms (hemorrhages, hard exudates,
cotton-wool spots) but less than severe; 3 severe: at least `SEVERE_HEMORRHAGES_PER_QUADRANT`
hemorrhages in each of the 4 quadrants, or venous beading; 4 proliferative:
neovascularisation or a pre-retinal hemorrhage. Must not paint anything.
"""

import dataclasses

import numpy as np

from drscreen.data.synthetic.config import SynthConfig

SEVERE_HEMORRHAGES_PER_QUADRANT = 5
EYE_ORDER = ("left", "right")


@dataclasses.dataclass(frozen=True)
class LesionPlan:
    """How many lesions of each kind one eye receives.

    Attributes
    ----------
    microaneurysms:
        Number of microaneurysms.
    hemorrhages:
        Intraretinal (dot, blot, flame) hemorrhages per quadrant: superotemporal,
        inferotemporal, superonasal, inferonasal.
    exudate_clusters:
        Groups of hard exudates (clusters or circinate rings).
    cotton_wool_spots:
        Number of cotton-wool spots (soft exudates).
    venous_beading:
        Whether the main veins are beaded.
    neovascularisation:
        Number of new-vessel tufts (at the disc or elsewhere).
    preretinal_hemorrhage:
        Whether a boat-shaped pre-retinal hemorrhage is present.
    """

    microaneurysms: int = 0
    hemorrhages: tuple[int, int, int, int] = (0, 0, 0, 0)
    exudate_clusters: int = 0
    cotton_wool_spots: int = 0
    venous_beading: bool = False
    neovascularisation: int = 0
    preretinal_hemorrhage: bool = False


def icdr_grade(plan: LesionPlan) -> int:
    """The ICDR grade the findings of `plan` call for."""
    if plan.neovascularisation > 0 or plan.preretinal_hemorrhage:
        return 4
    if plan.venous_beading or min(plan.hemorrhages) >= SEVERE_HEMORRHAGES_PER_QUADRANT:
        return 3
    if sum(plan.hemorrhages) or plan.exudate_clusters or plan.cotton_wool_spots:
        return 2
    return 1 if plan.microaneurysms else 0


def patient_grades(config: SynthConfig, patient: int) -> tuple[int, int]:
    """(left, right) grades of a patient; each eye's marginal follows `config.grade_mix`.

    One eye, chosen at random, draws from the mix; the other copies it with probability
    `config.pair_correlation` and otherwise draws independently from the mix.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, patient]))
    mix = np.asarray(config.grade_mix)
    first = int(rng.choice(5, p=mix))
    independent = int(rng.choice(5, p=mix))
    second = first if rng.random() < config.pair_correlation else independent
    return (first, second) if rng.random() < 0.5 else (second, first)


def _count(rng: np.random.Generator, low: float, high: float, scale: float) -> int:
    return max(1, round(rng.uniform(low, high) * scale))


def _moderate_hemorrhages(rng: np.random.Generator, scale: float) -> tuple[int, int, int, int]:
    """1-3 quadrants with a few hemorrhages; at least one quadrant stays below severe."""
    counts = np.zeros(4, int)
    quadrants = rng.choice(4, size=rng.integers(1, 4), replace=False)
    for q in quadrants:
        counts[q] = min(SEVERE_HEMORRHAGES_PER_QUADRANT - 1, _count(rng, 1, 3, scale))
    return tuple(int(c) for c in counts)


def _moderate_plan(rng: np.random.Generator, scale: float) -> LesionPlan:
    findings = [rng.random() < p for p in (0.6, 0.45, 0.3)]
    if not any(findings):
        findings[rng.integers(3)] = True
    with_hemorrhages, with_exudates, with_cws = findings
    return LesionPlan(
        microaneurysms=_count(rng, 1, 10, scale) if rng.random() < 0.85 else 0,
        hemorrhages=_moderate_hemorrhages(rng, scale) if with_hemorrhages else (0, 0, 0, 0),
        exudate_clusters=_count(rng, 1, 3, scale) if with_exudates else 0,
        cotton_wool_spots=_count(rng, 1, 3, scale) if with_cws else 0,
    )


def _severe_plan(rng: np.random.Generator, scale: float) -> LesionPlan:
    if rng.random() < 0.7:
        hemorrhages = tuple(
            SEVERE_HEMORRHAGES_PER_QUADRANT + int(rng.integers(0, 5)) for _ in range(4)
        )
        beading = rng.random() < 0.4
    else:
        hemorrhages = _moderate_hemorrhages(rng, scale)
        beading = True
    return LesionPlan(
        microaneurysms=_count(rng, 8, 25, scale),
        hemorrhages=hemorrhages,
        exudate_clusters=_count(rng, 1, 4, scale) if rng.random() < 0.7 else 0,
        cotton_wool_spots=_count(rng, 1, 5, scale) if rng.random() < 0.6 else 0,
        venous_beading=beading,
    )


def lesion_plan(grade: int, rng: np.random.Generator, lesion_count: float = 1.0) -> LesionPlan:
    """Draws findings consistent with an ICDR grade (``icdr_grade(plan) == grade``).

    Parameters
    ----------
    grade:
        ICDR grade 0-4.
    lesion_count:
        Multiplier on the lesion counts (the difficulty's `lesion_count`); the counts that
        define a grade's boundaries are kept.
    """
    if grade == 0:
        return LesionPlan()
    if grade == 1:
        return LesionPlan(microaneurysms=_count(rng, 1, 6, lesion_count))
    if grade == 2:
        return _moderate_plan(rng, lesion_count)
    if grade == 3:
        return _severe_plan(rng, lesion_count)
    if grade == 4:
        background = (_moderate_plan if rng.random() < 0.5 else _severe_plan)(rng, lesion_count)
        neovascularisation = int(rng.integers(1, 3)) if rng.random() < 0.85 else 0
        preretinal = neovascularisation == 0 or rng.random() < 0.25
        return dataclasses.replace(
            background, neovascularisation=neovascularisation, preretinal_hemorrhage=preretinal
        )
    raise ValueError(f"grade {grade} is not an ICDR grade 0-4")
