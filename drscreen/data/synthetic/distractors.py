"""Look-alikes a screening model must not mistake for lesions.

Drusen (pale yellow dots, like exudates), pigment clumps (dark spots, like hemorrhages),
light reflexes along vessels and the nerve fibre layer's sheen (bright, like exudates and
cotton-wool spots), and dust on the camera's optics (dark blurry dots fixed in the camera's
frame, painted after rotation). Vessel crossings and the bright optic disc come with the
anatomy. Nothing here is written to the lesion masks.
"""

import math

import numpy as np

from drscreen.data.synthetic.anatomy import Anatomy, Vessel
from drscreen.data.synthetic.windows import Window, clipped_window

_BASE_RATES = {"drusen": 3.0, "pigment": 1.0, "vessel_reflex": 4.0, "sheen": 1.5, "dust": 2.0}


def distractor_counts(rng: np.random.Generator, rate: float) -> dict[str, int]:
    """Number of each distractor in one image, Poisson around `rate` times a base rate."""
    counts = {name: int(rng.poisson(base * rate)) for name, base in _BASE_RATES.items()}
    if rng.random() < 0.6:
        counts["drusen"] = 0
    return counts


def _gaussian_spot(window: Window, a: float, b: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    u = (window.dx * c + window.dy * s) / a
    v = (-window.dx * s + window.dy * c) / b
    return np.exp(-(u * u + v * v))


def _random_point(anatomy: Anatomy, rng: np.random.Generator, spread: float) -> tuple[float, float]:
    r = spread * anatomy.fov_radius * math.sqrt(rng.random())
    theta = rng.uniform(0, 2 * math.pi)
    return anatomy.center[0] + r * math.cos(theta), anatomy.center[1] + r * math.sin(theta)


def paint_drusen(
    albedo: np.ndarray, anatomy: Anatomy, rng: np.random.Generator, count: int
) -> None:
    """Small, soft-edged pale yellow dots scattered around the macula."""
    s = anatomy.scale
    for _ in range(count):
        x, y = rng.normal(anatomy.fovea_center, 0.25 * anatomy.fov_radius)
        r = rng.uniform(1.0, 3.0) * s
        window = clipped_window(albedo.shape, x, y, 3 * r)
        alpha = _gaussian_spot(window, r, r, 0.0) * rng.uniform(0.25, 0.55)
        patch = albedo[window.rows, window.cols]
        patch += alpha[..., None] * (np.array([1.0, 0.85, 0.5], np.float32) - patch)


def paint_pigment(
    albedo: np.ndarray, anatomy: Anatomy, rng: np.random.Generator, count: int
) -> None:
    """Dark brown-grey pigment clumps, irregular and small."""
    s = anatomy.scale
    for _ in range(count):
        x, y = _random_point(anatomy, rng, 0.9)
        r = rng.uniform(1.2, 4.0) * s
        window = clipped_window(albedo.shape, x, y, 3 * r)
        alpha = _gaussian_spot(window, r, r * rng.uniform(0.5, 1), rng.uniform(0, math.pi))
        absorption = np.array([0.55, 0.5, 0.4], np.float32) * rng.uniform(0.3, 0.7)
        albedo[window.rows, window.cols] *= 1.0 - alpha[..., None] * absorption


def paint_vessel_reflexes(
    image: np.ndarray, anatomy: Anatomy, vessels: list[Vessel], rng: np.random.Generator, count: int
) -> None:
    """Bright specular spots and short streaks lying on the larger vessels."""
    s = anatomy.scale
    wide = [v for v in vessels if v.widths[0] >= 2.0 * s and len(v.points) > 3]
    for _ in range(count if wide else 0):
        vessel = wide[rng.integers(len(wide))]
        i = int(rng.integers(1, len(vessel.points) - 1))
        (x, y), (x2, y2) = vessel.points[i], vessel.points[i + 1]
        angle = math.atan2(y2 - y, x2 - x)
        length = rng.uniform(1.0, 5.0) * s
        window = clipped_window(image.shape, x, y, 3 * length)
        alpha = _gaussian_spot(window, length, 0.7 * max(s, 0.5), angle)
        image[window.rows, window.cols] += alpha[..., None] * (
            rng.uniform(0.15, 0.4) * np.ones(3, np.float32)
        )


def paint_nerve_fibre_sheen(
    image: np.ndarray, anatomy: Anatomy, vessels: list[Vessel], rng: np.random.Generator, count: int
) -> None:
    """Whitish, striated sheen beside the arcades, as in young eyes."""
    s = anatomy.scale
    wide = [v for v in vessels if v.widths[0] >= 3.0 * s and len(v.points) > 8]
    for _ in range(count if wide else 0):
        vessel = wide[rng.integers(len(wide))]
        i = int(rng.integers(2, len(vessel.points) - 2))
        (x, y), (x2, y2) = vessel.points[i], vessel.points[i + 2]
        angle = math.atan2(y2 - y, x2 - x)
        a, b = rng.uniform(8, 22) * s, rng.uniform(2.5, 6) * s
        side = rng.choice((-1, 1)) * 1.5 * b
        cx, cy = x - side * math.sin(angle), y + side * math.cos(angle)
        window = clipped_window(image.shape, cx, cy, 2.5 * a)
        across = -window.dx * math.sin(angle) + window.dy * math.cos(angle)
        striae = 0.6 + 0.4 * np.cos(across * 1.8 / max(s, 0.3))
        alpha = _gaussian_spot(window, a, b, angle) * striae * rng.uniform(0.05, 0.14)
        image[window.rows, window.cols] += alpha[..., None] * np.array([0.9, 0.95, 1.0], np.float32)


def paint_dust(image: np.ndarray, rng: np.random.Generator, count: int, fov_radius: float) -> None:
    """Dark, blurry, grey dots from dust on the optics (in the camera's frame)."""
    size = image.shape[0]
    s = size / 512
    for _ in range(count):
        r = fov_radius * 0.9 * math.sqrt(rng.random())
        theta = rng.uniform(0, 2 * math.pi)
        x, y = size / 2 + r * math.cos(theta), size / 2 + r * math.sin(theta)
        radius = rng.uniform(1.5, 6.0) * s
        window = clipped_window(image.shape, x, y, 3 * radius)
        alpha = _gaussian_spot(window, radius, radius, 0.0) * rng.uniform(0.12, 0.35)
        image[window.rows, window.cols] *= 1.0 - alpha[..., None]
