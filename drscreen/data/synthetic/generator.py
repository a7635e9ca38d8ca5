"""One synthetic fundus photograph, with its grade and exact lesion ground truth, from a seed.

Image ``index`` of a dataset is patient ``index // 2 + 1``, left eye for even indices and
right eye for odd ones; its pixels depend only on ``(config, index)`` (numpy `SeedSequence`),
so a dataset is identical whatever the number of processes that write it.

Pipeline: anatomy -> albedo (choroid, macula, disc, vessels, drusen and pigment, lesions)
-> illumination and reflexes -> camera rotation (image, and the lesion label map with
nearest-neighbour sampling) -> field of view and notch -> dust -> image quality (colour,
haze, exposure, defocus, noise) -> for the `Difficulty.ungradable_fraction` of images, a
capture failure (`drscreen.data.synthetic.ungradable`). Whether and how an image is
ungradable is drawn from a stream of its own (``SeedSequence([seed, 3, index])``), so the
other images, and every image of a dataset without ungradable ones, are the same pixels as
without the option. Must not write files.
"""

import dataclasses
import math

import cv2
import numpy as np

from drscreen.data.lesions import LESION_TYPES
from drscreen.data.synthetic import anatomy as anatomy_lib
from drscreen.data.synthetic import distractors
from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.grading import EYE_ORDER, lesion_plan, patient_grades
from drscreen.data.synthetic.lesions import PaintedLesion, paint_lesions
from drscreen.data.synthetic.ungradable import UNGRADABLE_KINDS, Capture, make_ungradable


@dataclasses.dataclass(frozen=True)
class LesionRow:
    """One row of the lesion table, in pixels of the photograph as written.

    `area` counts the lesion's visible mask pixels (a later lesion may cover part of an
    earlier one); `form` (``"dot"``, ``"flame"``, ``"preretinal"``, ``"ring"``, ...) is kept in
    memory only and is not a column of ``lesions.csv``.
    """

    image: str
    lesion_type: str
    center_x: float
    center_y: float
    radius: float
    area: int
    form: str


@dataclasses.dataclass(frozen=True)
class SyntheticFundus:
    """A synthetic photograph and everything known about it.

    Attributes
    ----------
    image:
        uint8 (size, size, 3) RGB, before JPEG compression.
    masks:
        Lesion type to a bool (size, size) mask, for every type in `LESION_TYPES`.
    lesions:
        The lesion table rows of this image.
    grade:
        ICDR grade 0-4.
    patient_id:
        Patient identifier shared by both eyes.
    eye:
        ``"left"`` or ``"right"``.
    fov_mask:
        Bool (size, size), True inside the camera's field of view.
    jpeg_quality:
        JPEG quality to encode this image with.
    name:
        ``"<patient_id>_<eye>"``.
    problem:
        The capture failure that makes the photograph ungradable (one of
        `drscreen.data.synthetic.ungradable.UNGRADABLE_KINDS`), ``""`` when it is gradable.
        ``grade`` stays the eye's grade.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    lesions: list[LesionRow]
    grade: int
    patient_id: str
    eye: str
    fov_mask: np.ndarray
    jpeg_quality: int
    name: str
    problem: str = ""

    @property
    def gradable(self) -> bool:
        return not self.problem


def image_identity(index: int) -> tuple[str, str]:
    """(patient_id, eye) of dataset image `index`."""
    return str(index // 2 + 1), EYE_ORDER[index % 2]


def _fov_mask(
    anatomy: anatomy_lib.Anatomy, rng: np.random.Generator, notch_probability: float
) -> np.ndarray:
    mask = np.zeros((anatomy.size, anatomy.size), np.uint8)
    cx, cy = anatomy.center
    cv2.circle(
        mask, (round(cx * 16), round(cy * 16)), round(anatomy.fov_radius * 16), 1, -1, cv2.LINE_8, 4
    )
    if rng.random() < notch_probability:
        angle = rng.choice((-0.5, 0.0, 0.5)) * math.pi / 2
        depth, half_width = 0.05 * anatomy.fov_radius, 0.035 * anatomy.fov_radius
        c, s = math.cos(angle), math.sin(angle)
        r_in, r_out = anatomy.fov_radius - depth, anatomy.fov_radius + 2
        corners = [
            (r * c - w * s, r * s + w * c)
            for r, w in (
                (r_in, -half_width),
                (r_in, half_width),
                (r_out, half_width),
                (r_out, -half_width),
            )
        ]
        polygon = np.rint((np.array(corners) + (cx, cy)) * 16).astype(np.int32)
        cv2.fillPoly(mask, [polygon], 0, cv2.LINE_8, 4)
    return mask.astype(bool)


def _label_map(size: int, painted: list[PaintedLesion]) -> np.ndarray:
    labels = np.zeros((size, size), np.uint16)
    for number, lesion in enumerate(painted, start=1):
        row, col = lesion.origin
        height, width = lesion.mask.shape
        labels[row : row + height, col : col + width][lesion.mask] = number
    return labels


def _degrade(
    image: np.ndarray,
    fov: np.ndarray,
    anatomy: anatomy_lib.Anatomy,
    rng: np.random.Generator,
    config: SynthConfig,
) -> np.ndarray:
    """Camera and media effects: white balance, haze, exposure, defocus, noise, gamma.

    Returns the uint8 photograph, black outside the field of view `fov`.
    """
    params = config.params
    white_balance = rng.normal(1.0, 0.05, 3).astype(np.float32)
    blur = rng.uniform(0.0, params.blur_max)
    if rng.random() < params.poor_quality_probability:
        problem = rng.choice(("haze", "dark", "defocus"))
        if problem == "haze":
            amount = rng.uniform(0.2, 0.45)
            veil = np.array([0.75, 0.6, 0.4], np.float32) * float(image[::8, ::8].mean() * 2.2)
            image = image * np.float32(1 - amount) + np.float32(amount) * veil
            blur += rng.uniform(1.0, 2.5)
        elif problem == "dark":
            image = image * np.float32(rng.uniform(0.35, 0.6))
        else:
            blur += rng.uniform(2.0, 4.0)
    if blur * anatomy.scale > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur * anatomy.scale)
    # Uniform sensor noise of standard deviation `noise_sigma`, centred by the offset.
    noise_sigma = rng.uniform(0.3, 1.0) * params.noise_max
    spread = noise_sigma * math.sqrt(12.0)
    image = cv2.transform(image, np.diag(white_balance * np.float32(255)))
    image += rng.random(image.shape, dtype=np.float32) * np.float32(spread)
    photo = np.clip(image + np.float32(0.5 - spread / 2), 0, 255).astype(np.uint8)
    gamma = rng.uniform(0.85, 1.15)
    curve = np.rint((np.arange(256) / 255) ** gamma * 255).astype(np.uint8)
    photo = cv2.LUT(photo, curve)
    return cv2.bitwise_and(photo, photo, mask=fov.astype(np.uint8))


def generate_fundus(config: SynthConfig, index: int) -> SyntheticFundus:
    """Generates dataset image `index` of `config`.

    Raises
    ------
    ValueError
        If `index` is not in ``[0, config.n)``.
    """
    if not 0 <= index < config.n:
        raise ValueError(f"image index {index} is outside the dataset [0, {config.n})")
    patient_id, eye = image_identity(index)
    grade = patient_grades(config, index // 2)[index % 2]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, index]))
    params = config.params
    size = config.size

    anatomy = anatomy_lib.place_anatomy(size, eye, rng)
    plan = lesion_plan(grade, rng, params.lesion_count)
    counts = distractors.distractor_counts(rng, params.distractor_rate)

    albedo = anatomy_lib.paint_background(anatomy, rng)
    anatomy_lib.paint_disc(albedo, anatomy, rng)
    vessels = anatomy_lib.grow_vessel_tree(anatomy, rng, plan.venous_beading)
    anatomy_lib.paint_vessels(albedo, anatomy, vessels, rng)
    distractors.paint_drusen(albedo, anatomy, rng, counts["drusen"])
    distractors.paint_pigment(albedo, anatomy, rng, counts["pigment"])
    painted = paint_lesions(albedo, anatomy, vessels, plan, rng, params)

    light = anatomy_lib.illumination(anatomy, rng, params.illumination_unevenness)
    image = albedo * light[..., None]
    if rng.random() < 0.5:
        image += anatomy_lib.rim_haze(anatomy, rng)
    distractors.paint_vessel_reflexes(image, anatomy, vessels, rng, counts["vessel_reflex"])
    distractors.paint_nerve_fibre_sheen(image, anatomy, vessels, rng, counts["sheen"])

    angle = rng.uniform(-params.rotation_max_deg, params.rotation_max_deg)
    rotation = cv2.getRotationMatrix2D(anatomy.center, angle, 1.0)
    image = cv2.warpAffine(image, rotation, (size, size), flags=cv2.INTER_LINEAR)
    labels = cv2.warpAffine(
        _label_map(size, painted), rotation, (size, size), flags=cv2.INTER_NEAREST
    )

    fov = _fov_mask(anatomy, rng, config.notch_probability)
    distractors.paint_dust(image, rng, counts["dust"], anatomy.fov_radius)
    image = _degrade(image, fov, anatomy, rng, config)
    quality_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3, index]))
    problem, shift = "", (0, 0)
    if quality_rng.random() < params.ungradable_fraction:
        problem = str(quality_rng.choice(UNGRADABLE_KINDS))
        failed = make_ungradable(
            problem, Capture(image, fov, labels), quality_rng, anatomy.center, anatomy.fov_radius
        )
        image, fov, labels, shift = failed.image, failed.fov, failed.labels, failed.shift
    labels[~fov] = 0

    name = f"{patient_id}_{eye}"
    areas = np.bincount(labels.ravel(), minlength=len(painted) + 1)
    type_of = np.array(
        [-1, *(LESION_TYPES.index(lesion.lesion_type) for lesion in painted)], np.int8
    )
    lesion_of_pixel = type_of[labels]
    masks = {kind: lesion_of_pixel == number for number, kind in enumerate(LESION_TYPES)}
    rows = []
    for number, lesion in enumerate(painted, start=1):
        if areas[number] == 0:
            continue
        x, y = rotation @ np.array([lesion.center[0], lesion.center[1], 1.0]) + shift
        rows.append(
            LesionRow(
                name,
                lesion.lesion_type,
                round(float(x), 2),
                round(float(y), 2),
                round(lesion.radius, 2),
                int(areas[number]),
                lesion.form,
            )
        )
    low, high = params.jpeg_quality
    return SyntheticFundus(
        image=image,
        masks=masks,
        lesions=rows,
        grade=grade,
        patient_id=patient_id,
        eye=eye,
        fov_mask=fov,
        jpeg_quality=int(rng.integers(low, high + 1)),
        name=name,
        problem=problem,
    )
