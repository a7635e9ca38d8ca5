"""Healthy fundus anatomy: placement, choroid, macula, optic disc, vessel tree, illumination.

Everything is drawn in the *retina frame* (before the camera's rotation) on a float32 RGB
albedo in [0, 1]; `illumination` gives the multiplicative light field applied afterwards.
Lengths are chosen for a 512 px photograph and multiplied by `Anatomy.scale`.
Must not paint lesions or distractors.
"""

import dataclasses
import math

import cv2
import numpy as np

from drscreen.data.synthetic.windows import clipped_window

REFERENCE_SIZE = 512
_VEIN_ABSORPTION = np.array([0.34, 0.64, 0.55], np.float32)
_ARTERY_ABSORPTION = np.array([0.13, 0.37, 0.30], np.float32)


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """Where the structures of one eye lie, in pixels of the retina frame.

    Attributes
    ----------
    size:
        Side of the square photograph.
    eye:
        ``"left"`` or ``"right"``; the optic disc is on the nasal side, i.e. on the right of
        the photograph for a right eye and on the left for a left eye.
    center:
        Centre (x, y) of the circular field of view.
    fov_radius:
        Radius of the field of view.
    disc_center, disc_radius:
        Optic disc centre (x, y) and horizontal radius.
    fovea_center:
        Centre (x, y) of the fovea, about 2.5 disc diameters temporal to the disc.
    """

    size: int
    eye: str
    center: tuple[float, float]
    fov_radius: float
    disc_center: tuple[float, float]
    disc_radius: float
    fovea_center: tuple[float, float]

    @property
    def scale(self) -> float:
        return self.size / REFERENCE_SIZE

    @property
    def temporal_sign(self) -> float:
        """+1 when the temporal side (towards the fovea) is +x in the image, else -1."""
        return 1.0 if self.eye == "left" else -1.0

    def quadrant(self, x: float, y: float) -> int:
        """Retinal quadrant of a point: 0 superotemporal, 1 inferotemporal, 2 superonasal,
        3 inferonasal (split at the field of view's centre)."""
        temporal = (x - self.center[0]) * self.temporal_sign >= 0
        superior = y < self.center[1]
        return (0 if superior else 1) if temporal else (2 if superior else 3)


@dataclasses.dataclass(frozen=True)
class Vessel:
    """One vessel segment of the tree: a polyline with a width per point (pixels)."""

    points: np.ndarray
    widths: np.ndarray
    artery: bool


def place_anatomy(size: int, eye: str, rng: np.random.Generator) -> Anatomy:
    """Draws the field of view, disc and fovea positions for one eye."""
    radius = 0.5 * size * rng.uniform(0.93, 0.985)
    center = (size / 2.0, size / 2.0)
    sign = 1.0 if eye == "left" else -1.0
    disc_fovea = radius * rng.uniform(0.55, 0.66)
    fovea = (
        center[0] + sign * radius * rng.uniform(-0.02, 0.16),
        center[1] + radius * rng.uniform(-0.06, 0.08),
    )
    disc = (fovea[0] - sign * disc_fovea, fovea[1] - disc_fovea * rng.uniform(0.0, 0.12))
    return Anatomy(
        size=size,
        eye=eye,
        center=center,
        fov_radius=radius,
        disc_center=disc,
        disc_radius=disc_fovea / 5.0 * rng.uniform(0.9, 1.1),
        fovea_center=fovea,
    )


def _grid(size: int, cells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x row vector, y column vector) of a ``cells``-wide grid
    covering a ``size`` image, in the image's pixel units (what `cv2.resize` assumes)."""
    cells = cells or size
    coords = (np.arange(cells, dtype=np.float32) + 0.5) * (size / cells) - 0.5
    return coords[None, :], coords[:, None]


def _upsample(field: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)


def _coarse(size: int) -> int:
    """Side of the grid on which smooth fields are computed before upsampling."""
    return max(32, size // 4)


def smooth_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-scale noise with features about ``size / cells`` pixels wide."""
    cells = max(2, cells)
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def paint_background(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Orange-red retina albedo with choroidal texture and a darker macula and fovea.

    Smooth parts are computed on a coarse grid and upsampled; the grain is full resolution.

    Returns
    -------
    float32 array (size, size, 3), RGB in about [0, 1].
    """
    size = anatomy.size
    cells = _coarse(size)
    pigment = rng.uniform(0.0, 1.0)
    base = np.array(
        [
            rng.uniform(0.80, 0.95) - 0.10 * pigment,
            rng.uniform(0.34, 0.46) - 0.10 * pigment,
            rng.uniform(0.13, 0.24) - 0.05 * pigment,
        ],
        np.float32,
    )
    texture = 1.0 + 0.05 * smooth_noise(cells, 6, rng)
    choroid = smooth_noise(cells, int(rng.uniform(14, 26)), rng)
    tigroid = rng.uniform(0.0, 0.05) * np.exp(-((choroid / 0.5) ** 2))
    coarse = base[None, None, :] * texture[..., None]
    coarse[..., 1:] *= (1.0 - tigroid)[..., None]
    coarse[..., 0] *= 1.0 - 0.4 * tigroid

    xs, ys = _grid(size, cells)
    fx, fy = anatomy.fovea_center
    d2 = (xs - fx) ** 2 + (ys - fy) ** 2
    sigma = 1.8 * anatomy.disc_radius
    macula = np.exp(-d2 / (2 * sigma**2))
    foveola = np.exp(-d2 / (2 * (0.35 * anatomy.disc_radius) ** 2))
    strength = rng.uniform(0.6, 1.1)
    darkening = np.array([0.28, 0.42, 0.45], np.float32) * strength
    coarse *= 1.0 - (macula + 0.3 * foveola)[..., None] * darkening

    grain = rng.random((size, size), dtype=np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), max(0.6, anatomy.scale))
    return _upsample(coarse, size) * (0.97 + 0.06 * grain)[..., None]


def _soft_ellipse(
    xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float
) -> np.ndarray:
    rho = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    return np.clip((1.0 - rho) * min(rx, ry) / edge + 0.5, 0.0, 1.0)


def paint_disc(albedo: np.ndarray, anatomy: Anatomy, rng: np.random.Generator) -> None:
    """Blends a bright yellowish optic disc with a paler, temporally offset cup, in place."""
    cx, cy = anatomy.disc_center
    r = anatomy.disc_radius
    window = clipped_window(albedo.shape, cx, cy, 1.6 * r)
    xs = np.arange(window.cols.start, window.cols.stop, dtype=np.float32)[None, :]
    ys = np.arange(window.rows.start, window.rows.stop, dtype=np.float32)[:, None]
    patch = albedo[window.rows, window.cols]

    ry = r * rng.uniform(1.02, 1.15)
    halo = _soft_ellipse(xs, ys, cx, cy, 1.35 * r, 1.35 * ry, 0.35 * r) * rng.uniform(0.1, 0.35)
    patch += halo[..., None] * (np.array([0.95, 0.62, 0.35], np.float32) - patch)

    disc = _soft_ellipse(xs, ys, cx, cy, r, ry, 0.18 * r)
    rim = np.array([1.02, 0.70, 0.42], np.float32) * rng.uniform(0.92, 1.05)
    patch += disc[..., None] * (rim - patch)

    cup_ratio = rng.uniform(0.25, 0.55)
    cup_x = cx + anatomy.temporal_sign * 0.18 * r
    cup = _soft_ellipse(xs, ys, cup_x, cy, cup_ratio * r, cup_ratio * ry, 0.3 * r)
    cup_colour = np.array([1.12, 0.95, 0.72], np.float32)
    patch += (0.85 * cup)[..., None] * (cup_colour - patch)


def _walk(
    anatomy: Anatomy,
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    target: float,
    width: float,
    artery: bool,
    depth: int,
    beading: bool,
    vessels: list[Vessel],
) -> None:
    """Grows one vessel as a relaxing, wiggling random walk and recurses into branches."""
    s = anatomy.scale
    step = 2.5 * s
    length = width * rng.uniform(35, 60) if depth else 1.25 * anatomy.fov_radius
    n = max(3, int(length / step))
    arc = np.arange(n, dtype=np.float64) * step
    relax = rng.uniform(0.4, 0.6) * anatomy.fov_radius if depth == 0 else 60 * s
    wiggle = np.cumsum(rng.normal(0.0, 0.02 + 0.03 * depth, n))
    headings = target + (heading - target) * np.exp(-arc / relax) + wiggle
    steps = np.stack([np.cos(headings), np.sin(headings)], axis=1) * step
    points = start[None, :] + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])

    widths = width * np.exp(-arc / (rng.uniform(1.5, 2.5) * length))
    spacing = rng.uniform(28, 48) * s * (1 + depth * 0.3)
    branch_count = rng.poisson(length / spacing) if width > 1.1 * s else 0
    branch_at = np.sort(rng.integers(max(1, n // 10), n - 1, size=branch_count))
    ratios = rng.uniform(0.35, 0.7, size=branch_count)
    factor = np.ones(n)
    for index, ratio in zip(branch_at, ratios, strict=True):
        factor[index:] *= (1.0 - ratio**3) ** (1.0 / 3.0)
    widths = widths * factor
    if beading:
        widths = widths * (1.0 + 0.45 * np.clip(np.sin(arc / (3.5 * s)), 0.0, 1.0) ** 2)

    dist_center = np.hypot(points[:, 0] - anatomy.center[0], points[:, 1] - anatomy.center[1])
    dist_fovea = np.hypot(
        points[:, 0] - anatomy.fovea_center[0], points[:, 1] - anatomy.fovea_center[1]
    )
    stop = (
        (dist_center > 1.02 * anatomy.fov_radius)
        | (widths < 0.45 * s)
        | (dist_fovea < 0.45 * anatomy.disc_radius)
    )
    end = int(np.argmax(stop)) if stop.any() else n
    if end < 2:
        return
    vessels.append(Vessel(points[:end].astype(np.float32), widths[:end].astype(np.float32), artery))
    if depth >= 4:
        return
    for index, ratio in zip(branch_at, ratios, strict=True):
        if index >= end:
            break
        side = rng.choice((-1.0, 1.0))
        child_heading = headings[index] + side * rng.uniform(0.45, 1.1)
        _walk(
            anatomy,
            rng,
            points[index],
            child_heading,
            child_heading - side * rng.uniform(-0.2, 0.5),
            ratio * widths[max(0, index - 1)],
            artery,
            depth + 1,
            beading and depth == 0,
            vessels,
        )


def grow_vessel_tree(
    anatomy: Anatomy, rng: np.random.Generator, venous_beading: bool = False
) -> list[Vessel]:
    """Arteries and veins leaving the disc: temporal arcades around the macula, nasal trunks.

    Parameters
    ----------
    venous_beading:
        Modulate the main veins' calibre like beads on a string (severe NPDR).
    """
    s = anatomy.scale
    t = anatomy.temporal_sign
    start = np.array(anatomy.disc_center, np.float64)
    vessels: list[Vessel] = []
    # (initial, final) heading in a frame where +x is temporal and +y inferior.
    trunks = [
        (-1.5, 0.35, 1.0),  # superotemporal arcade: up, then arching towards the fovea side
        (1.5, -0.35, 1.0),  # inferotemporal arcade
        (-2.0, -2.55, 0.75),  # superonasal
        (2.0, 2.55, 0.75),  # inferonasal
    ]
    for initial, final, calibre in trunks:
        for artery in (False, True):
            jitter = rng.normal(0.0, 0.12)
            initial_angle = initial + jitter + (0.1 if artery else -0.1) * np.sign(initial)
            final_angle = final + rng.normal(0.0, 0.12)
            if t < 0:
                initial_angle, final_angle = math.pi - initial_angle, math.pi - final_angle
            width = calibre * s * (rng.uniform(3.0, 3.6) if artery else rng.uniform(4.4, 5.2))
            offset = rng.normal(0.0, 0.25 * anatomy.disc_radius, size=2)
            _walk(
                anatomy,
                rng,
                start + offset,
                initial_angle,
                final_angle,
                width,
                artery,
                0,
                venous_beading and not artery,
                vessels,
            )
    for _ in range(rng.integers(2, 5)):
        angle = rng.uniform(-0.35, 0.35)
        heading = angle if t > 0 else math.pi - angle
        _walk(
            anatomy,
            rng,
            start,
            heading,
            heading,
            rng.uniform(1.4, 2.0) * s,
            bool(rng.integers(2)),
            2,
            False,
            vessels,
        )
    return vessels


def _draw(canvas: np.ndarray, vessel: Vessel, widths: np.ndarray) -> None:
    """Draws a polyline as anti-aliased runs of constant thickness; sub-pixel widths fade."""
    thickness = np.maximum(1, np.rint(widths)).astype(np.int32)
    value = np.rint(np.clip(widths, 0.0, 1.0) * 15).astype(np.int32) * 17
    points = np.rint(vessel.points * 16).astype(np.int32)
    key = thickness * 1000 + value
    breaks = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(key)]])
    for begin, end in zip(starts, ends, strict=True):
        run = points[begin : min(end + 1, len(points))]
        if len(run) < 2 or value[begin] == 0:
            continue
        cv2.polylines(
            canvas, [run], False, int(value[begin]), int(thickness[begin]), cv2.LINE_AA, 4
        )


def vessel_maps(anatomy: Anatomy, vessels: list[Vessel]) -> tuple[np.ndarray, np.ndarray]:
    """Vein and artery coverage in [0, 1], float32 (size, size) each."""
    size = anatomy.size
    veins = np.zeros((size, size), np.uint8)
    arteries = np.zeros((size, size), np.uint8)
    for vessel in vessels:
        _draw(arteries if vessel.artery else veins, vessel, vessel.widths)
    sigma = 0.35 + 0.25 * anatomy.scale
    return tuple(
        cv2.GaussianBlur(canvas.astype(np.float32) * (1 / 255), (0, 0), sigma)
        for canvas in (veins, arteries)
    )


def paint_vessels(
    albedo: np.ndarray, anatomy: Anatomy, vessels: list[Vessel], rng: np.random.Generator
) -> None:
    """Darkens the albedo along veins (dark, thick) and arteries (lighter, thinner), in place."""
    veins, arteries = vessel_maps(anatomy, vessels)
    depth = np.float32(rng.uniform(0.85, 1.1))
    # Per channel: transmission = 1 - depth * (vein absorption * veins + artery absorption
    # * arteries), one linear map of (veins, arteries, 1) evaluated by cv2.transform.
    mixing = np.stack(
        [-depth * _VEIN_ABSORPTION, -depth * _ARTERY_ABSORPTION, np.ones(3, np.float32)], axis=1
    )
    coverage = cv2.merge([veins, arteries, np.ones_like(veins)])
    transmission = np.maximum(cv2.transform(coverage, mixing), 0.05)
    albedo *= transmission


def illumination(anatomy: Anatomy, rng: np.random.Generator, unevenness: float) -> np.ndarray:
    """Multiplicative light field: vignetting towards the rim and uneven, tilted illumination."""
    size = anatomy.size
    cells = _coarse(size)
    xs, ys = _grid(size, cells)
    cx, cy = anatomy.center
    r = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / anatomy.fov_radius
    vignette = 1.0 - rng.uniform(0.3, 0.55) * r ** rng.uniform(2.0, 3.5)
    angle = rng.uniform(0, 2 * math.pi)
    tilt = (math.cos(angle) * (xs - cx) + math.sin(angle) * (ys - cy)) / anatomy.fov_radius
    field = 1.0 + unevenness * (0.5 * smooth_noise(cells, 4, rng) + rng.uniform(0, 0.6) * tilt)
    light = np.clip(vignette * field, 0.05, None) * rng.uniform(0.9, 1.1)
    return _upsample(light.astype(np.float32), size)


def rim_haze(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Additive bluish-white haze hugging the field of view's rim (float32 HxWx3)."""
    cells = max(64, anatomy.size // 2)
    xs, ys = _grid(anatomy.size, cells)
    cx, cy = anatomy.center
    r = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    width = rng.uniform(0.02, 0.06) * anatomy.fov_radius
    ring = np.exp(-np.abs(anatomy.fov_radius - r) / width)
    angle = rng.uniform(0, 2 * math.pi)
    sector = 0.5 + 0.5 * np.cos(np.arctan2(ys - cy, xs - cx) - angle)
    haze = (ring * sector * rng.uniform(0.05, 0.25))[..., None] * np.array(
        [0.8, 0.85, 1.0], np.float32
    )
    return _upsample(haze.astype(np.float32), anatomy.size)
