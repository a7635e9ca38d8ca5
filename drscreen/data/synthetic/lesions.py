"""DR lesion painters: each paints on the retina albedo in place and returns its exact pixels.

Microaneurysms, dot/blot/flame and pre-retinal hemorrhages, hard exudates (clusters and
circinate rings), cotton-wool spots and neovascularisation tufts, placed where they occur
clinically. A lesion's mask is where its shape's opacity is at least one half. Sizes are for
a 512 px photograph and scale with the image; colours are changed multiplicatively (red
lesions absorb green and blue most) or blended towards a target (bright lesions).
Must not decide grades (see `grading`) or touch the photograph after illumination.
"""

import dataclasses
import math

import cv2
import numpy as np

from drscreen.data import lesions as lesion_types
from drscreen.data.synthetic.anatomy import Anatomy, Vessel
from drscreen.data.synthetic.config import Difficulty
from drscreen.data.synthetic.grading import LesionPlan
from drscreen.data.synthetic.windows import Window, clipped_window

_MIN_RADIUS = 0.9  # pixels: every lesion keeps a few mask pixels at any image size


@dataclasses.dataclass(frozen=True)
class PaintedLesion:
    """One painted lesion: its type, nominal geometry and exact mask in a window.

    Attributes
    ----------
    lesion_type:
        One of `drscreen.data.lesions.LESION_TYPES`.
    form:
        Clinical form (``"dot"``, ``"blot"``, ``"flame"``, ``"preretinal"``, ``"cluster"``,
        ``"ring"``, ``"disc"``, ``"elsewhere"``, ...).
    center:
        Centre (x, y) in pixels of the retina frame.
    radius:
        Radius in pixels of the circle around `center` that holds the lesion.
    origin:
        (row, column) of the window's top-left pixel.
    mask:
        Boolean window, True on the lesion's pixels.
    """

    lesion_type: str
    form: str
    center: tuple[float, float]
    radius: float
    origin: tuple[int, int]
    mask: np.ndarray


def _ellipse(
    dx: np.ndarray, dy: np.ndarray, a: float, b: float, angle: float, edge: float
) -> np.ndarray:
    """Opacity of an ellipse (semi-axes a along `angle`, b across) with a soft edge."""
    c, s = math.cos(angle), math.sin(angle)
    u = (dx * c + dy * s) / a
    v = (-dx * s + dy * c) / b
    rho = np.sqrt(u * u + v * v)
    return np.clip((1.0 - rho) * min(a, b) / edge + 0.5, 0.0, 1.0)


def _blur(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a window's field; a window clipped away by the frame stays empty."""
    return cv2.GaussianBlur(field, (0, 0), sigma) if field.size else field


def _absorb(albedo: np.ndarray, window: Window, alpha: np.ndarray, absorption: np.ndarray) -> None:
    patch = albedo[window.rows, window.cols]
    patch *= 1.0 - alpha[..., None] * np.asarray(absorption, np.float32)


def _brighten(
    albedo: np.ndarray,
    window: Window,
    alpha: np.ndarray,
    colour: tuple[float, float, float],
    strength: float,
) -> None:
    patch = albedo[window.rows, window.cols]
    patch += (strength * alpha)[..., None] * (np.asarray(colour, np.float32) - patch)


def _lesion(
    kind: str, form: str, cx: float, cy: float, radius: float, window: Window, alpha: np.ndarray
) -> PaintedLesion:
    return PaintedLesion(
        kind,
        form,
        (float(cx), float(cy)),
        float(radius),
        window.origin,
        alpha >= 0.5,
    )


def paint_microaneurysm(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
) -> PaintedLesion:
    """A tiny, round, dark-red dot (radius about 1-2.5 px at 512 px)."""
    radius = max(_MIN_RADIUS, rng.uniform(0.9, 2.2) * scale * params.lesion_size)
    window = clipped_window(albedo.shape, cx, cy, radius + 1.5)
    alpha = _ellipse(window.dx, window.dy, radius, radius, 0.0, 0.9)
    strength = params.lesion_contrast * rng.uniform(0.45, 0.9)
    _absorb(albedo, window, alpha, np.clip(np.array([0.30, 0.62, 0.55]) * strength, 0, 0.95))
    return _lesion(lesion_types.MICROANEURYSM, "dot", cx, cy, radius, window, alpha)


def paint_hemorrhage(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
    form: str,
    fibre_angle: float = 0.0,
) -> PaintedLesion:
    """An intraretinal hemorrhage: ``dot`` (small round), ``blot`` (irregular) or ``flame``
    (elongated along the nerve fibres, `fibre_angle`)."""
    size = scale * params.lesion_size
    strength = params.lesion_contrast * rng.uniform(0.5, 0.95)
    absorption = np.clip(np.array([0.42, 0.72, 0.64]) * strength, 0, 0.95)
    if form == "flame":
        length = max(_MIN_RADIUS * 2, rng.uniform(5, 13) * size)
        width = max(_MIN_RADIUS, rng.uniform(1.2, 3.0) * size)
        angle = fibre_angle + rng.normal(0, 0.2)
        window = clipped_window(albedo.shape, cx, cy, length + 2)
        along = window.dx * math.cos(angle) + window.dy * math.sin(angle)
        across = -window.dx * math.sin(angle) + window.dy * math.cos(angle)
        streaks = 0.75 + 0.25 * np.cos(across * (2.2 / max(width, 1.0)) + rng.uniform(0, 6))
        taper = np.clip(1.0 - 0.5 * (along / length + 1) ** 2 / 2, 0.3, 1.0)
        alpha = _ellipse(window.dx, window.dy, length, width, angle, 1.2) * streaks * taper
        alpha = np.clip(alpha * 1.25, 0, 1)
        radius = length
    else:
        radius = max(
            _MIN_RADIUS * 1.5,
            rng.uniform(1.6, 3.8) * size if form == "dot" else rng.uniform(3.5, 8) * size,
        )
        window = clipped_window(albedo.shape, cx, cy, 1.6 * radius + 2)
        alpha = _ellipse(
            window.dx,
            window.dy,
            radius,
            radius * rng.uniform(0.75, 1),
            rng.uniform(0, math.pi),
            1.0,
        )
        if form == "blot":
            for _ in range(rng.integers(2, 5)):
                offset = rng.normal(0, 0.45 * radius, 2)
                lobe = _ellipse(
                    window.dx - offset[0],
                    window.dy - offset[1],
                    radius * rng.uniform(0.4, 0.8),
                    radius * rng.uniform(0.3, 0.6),
                    rng.uniform(0, math.pi),
                    1.0,
                )
                alpha = np.maximum(alpha, lobe)
            extent = np.hypot(window.dx, window.dy)[alpha >= 0.5]
            radius = float(extent.max()) + 0.5 if extent.size else radius
        mottling = 0.85 + 0.15 * rng.random(alpha.shape).astype(np.float32)
        alpha = alpha * np.where(alpha >= 0.5, mottling, 1.0)
    _absorb(albedo, window, alpha, absorption)
    return _lesion(lesion_types.HEMORRHAGE, form, cx, cy, radius, window, alpha)


def paint_preretinal_hemorrhage(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
) -> PaintedLesion:
    """A large boat-shaped hemorrhage: round below, flat fluid level on top."""
    radius = max(4.0, rng.uniform(16, 34) * scale)
    window = clipped_window(albedo.shape, cx, cy, radius + 2)
    alpha = _ellipse(window.dx, window.dy, radius * rng.uniform(1.0, 1.4), radius, 0.0, 1.5)
    level = -radius * rng.uniform(0.1, 0.5)
    alpha = alpha * np.clip((window.dy - level) / 1.2 + 0.5, 0, 1)
    depth = np.clip(0.8 + 0.2 * (window.dy / radius), 0.6, 1.0)
    strength = min(1.0, params.lesion_contrast) * rng.uniform(0.75, 0.95)
    _absorb(albedo, window, alpha * depth, np.array([0.55, 0.85, 0.78]) * strength)
    return _lesion(lesion_types.HEMORRHAGE, "preretinal", cx, cy, radius, window, alpha)


def paint_exudates(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
    ring: bool,
) -> PaintedLesion:
    """Bright yellow, sharp-edged hard exudates: a cluster, or a circinate ring around a
    leaking point, painted as one lesion."""
    size = scale * params.lesion_size
    extent = rng.uniform(12, 30) * size if ring else rng.uniform(3, 16) * size
    window = clipped_window(albedo.shape, cx, cy, extent + 3 * size + 2)
    count = int(rng.integers(8, 30) if ring else rng.integers(1, 15))
    if ring:
        arc_start, arc_span = rng.uniform(0, 2 * math.pi), rng.uniform(math.pi, 2 * math.pi)
        angles = arc_start + rng.uniform(0, arc_span, count)
        dist = extent * rng.uniform(0.8, 1.0, count)
    else:
        angles = rng.uniform(0, 2 * math.pi, count)
        dist = extent * np.sqrt(rng.uniform(0, 1, count))
    alpha = np.zeros(window.shape, np.float32)
    for angle, d in zip(angles, dist, strict=True):
        r = max(_MIN_RADIUS * 0.8, rng.uniform(0.6, 2.4) * size)
        speck = _ellipse(
            window.dx - d * math.cos(angle),
            window.dy - d * math.sin(angle),
            r,
            r * rng.uniform(0.6, 1.0),
            rng.uniform(0, math.pi),
            0.6,
        )
        alpha = np.maximum(alpha, speck)
    strength = min(0.95, 0.8 * params.lesion_contrast * rng.uniform(0.65, 1.0))
    colour = (1.08, 0.95 * rng.uniform(0.95, 1.05), 0.42 * rng.uniform(0.8, 1.2))
    _brighten(albedo, window, alpha, colour, strength)
    extent_px = np.hypot(window.dx, window.dy)[alpha >= 0.5]
    radius = float(extent_px.max()) + 0.5 if extent_px.size else extent
    return _lesion(
        lesion_types.HARD_EXUDATE, "ring" if ring else "cluster", cx, cy, radius, window, alpha
    )


def paint_cotton_wool_spot(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
    fibre_angle: float,
) -> PaintedLesion:
    """A soft, pale, fluffy patch elongated along the nerve fibres."""
    size = scale * params.lesion_size
    a = max(_MIN_RADIUS * 1.5, rng.uniform(4, 10) * size)
    b = a / rng.uniform(1.2, 2.0)
    window = clipped_window(albedo.shape, cx, cy, a + 3)
    base = _ellipse(window.dx, window.dy, a, b, fibre_angle + rng.normal(0, 0.3), 0.6 * b + 0.5)
    fluff = _blur(rng.random(base.shape).astype(np.float32), 0.8)
    alpha = np.clip(base * (0.75 + 0.5 * fluff), 0, 1)
    strength = min(0.9, 0.55 * params.lesion_contrast * rng.uniform(0.6, 1.0))
    _brighten(albedo, window, alpha, (1.0, 0.86, 0.70), strength)
    return _lesion(lesion_types.SOFT_EXUDATE, "spot", cx, cy, a, window, alpha)


def paint_neovascularisation(
    albedo: np.ndarray,
    cx: float,
    cy: float,
    rng: np.random.Generator,
    params: Difficulty,
    scale: float,
    form: str,
) -> PaintedLesion:
    """A tuft of fine, tortuous, looping new vessels (``disc`` or ``elsewhere``)."""
    radius = max(4.0, rng.uniform(10, 22) * scale * max(1.0, params.lesion_size))
    window = clipped_window(albedo.shape, cx, cy, radius + 2)
    canvas = np.zeros(window.shape, np.uint8)
    origin = np.array([cx - window.cols.start, cy - window.rows.start])
    step = max(0.6, 1.5 * scale)
    for _ in range(rng.integers(4, 9)):
        heading = rng.uniform(0, 2 * math.pi)
        turn = rng.normal(0, 0.35, 60).cumsum() + rng.choice((-1, 1)) * 0.18 * np.arange(60)
        steps = np.stack([np.cos(heading + turn), np.sin(heading + turn)], 1) * step
        path = origin + rng.normal(0, 0.3 * radius, 2) + np.cumsum(steps, 0)
        inside = np.hypot(*(path - origin).T) <= radius
        path = path[: int(np.argmin(inside)) if not inside.all() else len(path)]
        if len(path) >= 2:
            cv2.polylines(
                canvas, [np.rint(path * 16).astype(np.int32)], False, 255, 1, cv2.LINE_AA, 4
            )
    alpha = _blur(canvas.astype(np.float32) / 255, 0.5)
    alpha = np.clip(alpha * 1.4, 0, 1)
    strength = min(1.0, params.lesion_contrast) * rng.uniform(0.6, 0.9)
    _absorb(albedo, window, alpha, np.array([0.35, 0.62, 0.55]) * strength)
    return _lesion(lesion_types.NEOVASCULARISATION, form, cx, cy, radius, window, alpha)


def _fibre_angle(anatomy: Anatomy, x: float, y: float) -> float:
    """Direction of the nerve fibres at (x, y): radial from the disc, arching around the
    fovea (a simple arcuate approximation)."""
    dx, dy = x - anatomy.disc_center[0], y - anatomy.disc_center[1]
    angle = math.atan2(dy, dx)
    bend = 0.6 * math.exp(-abs(dy) / (2 * anatomy.disc_radius))
    toward_temporal = dx * anatomy.temporal_sign > 0
    return angle + (math.copysign(bend, dy) * anatomy.temporal_sign if toward_temporal else 0.0)


class _Placer:
    """Draws lesion positions in the field of view, away from the disc."""

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator):
        self.anatomy = anatomy
        self.rng = rng

    def _ok(self, x: float, y: float) -> bool:
        a = self.anatomy
        inside = math.hypot(x - a.center[0], y - a.center[1]) < 0.88 * a.fov_radius
        off_disc = math.hypot(x - a.disc_center[0], y - a.disc_center[1]) > 1.6 * a.disc_radius
        return inside and off_disc

    def around_fovea(self, spread: float) -> tuple[float, float]:
        a = self.anatomy
        for _ in range(100):
            x, y = self.rng.normal(a.fovea_center, spread * a.fov_radius)
            if self._ok(x, y):
                return float(x), float(y)
        return a.fovea_center

    def in_quadrant(self, quadrant: int) -> tuple[float, float]:
        a = self.anatomy
        for _ in range(100):
            r = a.fov_radius * math.sqrt(self.rng.uniform(0.03, 0.75))
            theta = self.rng.uniform(0, 2 * math.pi)
            x, y = a.center[0] + r * math.cos(theta), a.center[1] + r * math.sin(theta)
            if self._ok(x, y) and a.quadrant(x, y) == quadrant:
                return x, y
        return self.around_fovea(0.3)

    def near_vessel(self, vessels: list[Vessel], min_width: float) -> tuple[float, float]:
        wide = [v for v in vessels if v.widths[0] >= min_width and len(v.points) > 4] or vessels
        for _ in range(100):
            vessel = wide[self.rng.integers(len(wide))]
            x, y = vessel.points[self.rng.integers(len(vessel.points))]
            if self._ok(float(x), float(y)):
                return float(x), float(y)
        return self.around_fovea(0.3)


def paint_lesions(
    albedo: np.ndarray,
    anatomy: Anatomy,
    vessels: list[Vessel],
    plan: LesionPlan,
    rng: np.random.Generator,
    params: Difficulty,
) -> list[PaintedLesion]:
    """Places and paints every lesion of `plan` on the albedo, in place.

    Returns the painted lesions in painting order (later ones cover earlier ones).
    """
    s = anatomy.scale
    place = _Placer(anatomy, rng)
    painted = []
    for _ in range(plan.exudate_clusters):
        x, y = place.around_fovea(0.22)
        painted.append(paint_exudates(albedo, x, y, rng, params, s, ring=rng.random() < 0.35))
    for _ in range(plan.cotton_wool_spots):
        x, y = place.near_vessel(vessels, 2.5 * s)
        painted.append(
            paint_cotton_wool_spot(albedo, x, y, rng, params, s, _fibre_angle(anatomy, x, y))
        )
    for quadrant, count in enumerate(plan.hemorrhages):
        for _ in range(count):
            x, y = place.in_quadrant(quadrant)
            form = rng.choice(("dot", "blot", "flame"), p=(0.45, 0.35, 0.2))
            painted.append(
                paint_hemorrhage(
                    albedo, x, y, rng, params, s, str(form), _fibre_angle(anatomy, x, y)
                )
            )
    for _ in range(plan.microaneurysms):
        x, y = place.around_fovea(0.3)
        painted.append(paint_microaneurysm(albedo, x, y, rng, params, s))
    if plan.preretinal_hemorrhage:
        x, y = place.near_vessel(vessels, 3.0 * s)
        painted.append(paint_preretinal_hemorrhage(albedo, x, y, rng, params, s))
    for _ in range(plan.neovascularisation):
        if rng.random() < 0.5:
            x, y = anatomy.disc_center + rng.normal(0, 0.4 * anatomy.disc_radius, 2)
            form = "disc"
        else:
            x, y = place.near_vessel(vessels, 3.0 * s)
            form = "elsewhere"
        painted.append(paint_neovascularisation(albedo, float(x), float(y), rng, params, s, form))
    return painted
