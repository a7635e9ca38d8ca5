"""Ungradable photographs: what a failed capture does to a synthetic fundus photograph.

Each `UNGRADABLE_KINDS` entry is a capture failure that screening programs send back for a
retake, made clearly worse than the poor but gradable images of the difficulty presets
(`Difficulty.poor_quality_probability`: mild haze, dark or defocused):

- ``defocus``: Gaussian blur of 9-18 px (at 512 px) instead of at most 5.5;
- ``motion``: a 40-80 px motion streak in a random direction;
- ``underexposed``: 6-18 % of the light (gradable dark images keep 35-60 %);
- ``overexposed``: 3-5 times the light, clipped (washed out);
- ``small_pupil``: only a central 25-45 % of the field lit, the rest vignetted to near black;
- ``eyelid``: an eyelid shadow covering 35-60 % of the field from the top or bottom, with
  lashes along its edge;
- ``off_centre``: the field of view shifted so that 25-50 % of its radius leaves the frame;
- ``haze``: a dense yellow-white veil (70-90 %, cataract or a dirty lens) with blur;
- ``not_fundus``: no fundus at all (a scene, a document, a texture, a coloured disc).

Applied to the finished uint8 photograph, its field of view and its lesion label map, from a
random stream of its own (`drscreen.data.synthetic.generator`), so choosing ungradable
images never changes the others. Geometry (``off_centre``) moves the lesion labels with the
image; ``not_fundus`` clears them. Must not decide which images are ungradable.
"""

import dataclasses
import math

import cv2
import numpy as np

UNGRADABLE_KINDS = (
    "defocus",
    "motion",
    "underexposed",
    "overexposed",
    "small_pupil",
    "eyelid",
    "off_centre",
    "haze",
    "not_fundus",
)


@dataclasses.dataclass(frozen=True)
class Capture:
    """A photograph with its field of view and lesion label map (0: no lesion)."""

    image: np.ndarray
    fov: np.ndarray
    labels: np.ndarray
    shift: tuple[int, int] = (0, 0)
    """(dx, dy) by which the retina moved in the frame (lesion centres move with it)."""


def _finish(image: np.ndarray, fov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise after the optics, quantised to uint8, black outside the field of view."""
    noisy = image + rng.normal(0.0, 1.5, image.shape).astype(np.float32)
    photo = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return photo * fov[..., None].astype(np.uint8)


def _radius_map(shape: tuple[int, ...], centre: tuple[float, float], radius: float) -> np.ndarray:
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    return np.hypot(xs - centre[0], ys - centre[1]) / radius


def _defocus(capture: Capture, rng: np.random.Generator, scale: float, **_) -> Capture:
    sigma = rng.uniform(9.0, 18.0) * scale
    image = cv2.GaussianBlur(capture.image.astype(np.float32), (0, 0), sigma)
    return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))


def _motion(capture: Capture, rng: np.random.Generator, scale: float, **_) -> Capture:
    length = max(3, round(rng.uniform(40.0, 80.0) * scale))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    image = cv2.filter2D(capture.image.astype(np.float32), -1, kernel / kernel.sum())
    return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))


def _exposure(low: float, high: float):
    def apply(capture: Capture, rng: np.random.Generator, **_) -> Capture:
        image = capture.image.astype(np.float32) * np.float32(rng.uniform(low, high))
        return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))

    return apply


def _small_pupil(
    capture: Capture, rng: np.random.Generator, centre: tuple[float, float], radius: float, **_
) -> Capture:
    lit = rng.uniform(0.25, 0.45)
    r = _radius_map(capture.image.shape, centre, radius)
    light = 0.04 + 0.96 / (1.0 + np.exp((r - lit) / 0.05))
    image = capture.image.astype(np.float32) * light[..., None] * np.float32(rng.uniform(0.6, 0.9))
    return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))


def _eyelid(
    capture: Capture,
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    scale: float,
    **_,
) -> Capture:
    height, width = capture.image.shape[:2]
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    from_top = rng.random() < 0.7  # upper eyelids droop more often
    depth = rng.uniform(0.35, 0.6) * 2 * radius  # how far into the field the lid reaches
    edge_y = centre[1] - radius + depth
    curve = edge_y + 0.35 * radius * ((xs - centre[0]) / radius) ** 2  # a lid's arc
    inside = (curve - ys) if from_top else (ys - (2 * centre[1] - curve))
    shadow = 1.0 / (1.0 + np.exp(-inside / (6.0 * scale + 1.0)))
    light = 1.0 - shadow * rng.uniform(0.85, 0.95)
    image = capture.image.astype(np.float32) * light[..., None]
    lashes = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(12, 25))):
        x0 = rng.uniform(centre[0] - radius, centre[0] + radius)
        y0 = edge_y + 0.35 * radius * ((x0 - centre[0]) / radius) ** 2
        y0 = y0 if from_top else 2 * centre[1] - y0
        length = rng.uniform(0.1, 0.25) * radius * (1 if from_top else -1)
        tip = (round(x0 + rng.uniform(-0.3, 0.3) * length), round(y0 + length))
        cv2.line(lashes, (round(x0), round(y0)), tip, 1.0, max(1, round(2 * scale)), cv2.LINE_AA)
    image *= (1.0 - 0.8 * lashes)[..., None]
    return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))


def _off_centre(
    capture: Capture, rng: np.random.Generator, centre: tuple[float, float], radius: float, **_
) -> Capture:
    height, width = capture.image.shape[:2]
    margin = min(centre[0], centre[1], width - centre[0], height - centre[1]) - radius
    distance = max(0.0, margin) + rng.uniform(0.25, 0.5) * radius
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = round(distance * math.cos(angle)), round(distance * math.sin(angle))
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])

    def moved(array: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(array, matrix, (width, height), flags=cv2.INTER_NEAREST)

    fov = moved(capture.fov.astype(np.uint8)).astype(bool)
    image = moved(capture.image).astype(np.float32)
    return Capture(_finish(image, fov, rng), fov, moved(capture.labels), (dx, dy))


def _haze(capture: Capture, rng: np.random.Generator, scale: float, **_) -> Capture:
    amount = np.float32(rng.uniform(0.7, 0.9))
    image = capture.image.astype(np.float32)
    veil = np.array([0.95, 0.85, 0.6], np.float32) * np.float32(rng.uniform(170, 230))
    image = image * (1 - amount) + amount * veil
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(2.0, 5.0) * scale + 0.5)
    return dataclasses.replace(capture, image=_finish(image, capture.fov, rng))


def _smooth_field(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.random((cells, cells, 3)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _scene(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sky over ground with a few coloured boxes and blobs: a photograph of a room or street."""
    ys = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    horizon = rng.uniform(0.35, 0.65)
    sky = np.array([0.45, 0.65, 0.95], np.float32) * rng.uniform(0.7, 1.1)
    ground = rng.uniform(0.2, 0.7, 3).astype(np.float32)
    image = np.where(ys < horizon, sky * (1.1 - 0.4 * ys), ground * (0.6 + 0.5 * ys))
    image = np.broadcast_to(image, (size, size, 3)).copy() * 255
    for _ in range(int(rng.integers(3, 9))):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(size // 12, size // 3, 2)
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), rng.uniform(0, 255, 3), -1)
    return image + (_smooth_field(size, 24, rng) - 0.5) * 40


def _document(size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark lines of 'text' on a light, slightly tinted page."""
    image = np.ones((size, size, 3), np.float32) * rng.uniform(200, 250, 3).astype(np.float32)
    line = max(4, size // 24)
    for y in range(line * 2, size - line, line):
        x = int(rng.integers(line, 3 * line))
        while x < size - 2 * line:
            word = int(rng.integers(line, 5 * line))
            cv2.rectangle(image, (x, y), (min(x + word, size - line), y + line // 2), 40.0, -1)
            x += word + line // 2
    return image


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random coloured texture at several scales (fabric, a wall, a table top)."""
    fields = [_smooth_field(size, cells, rng) for cells in (4, 16, 64)]
    return (0.5 * fields[0] + 0.3 * fields[1] + 0.2 * fields[2]) * 255


def _plain_disc(size: int, rng: np.random.Generator, centre, radius) -> np.ndarray:
    """A lit disc on black without any retina: a lens cap, a test target, a light."""
    colour = rng.uniform(40, 255, 3).astype(np.float32)
    r = _radius_map((size, size), centre, radius)
    shade = np.clip(1.0 - 0.3 * r**2, 0, 1)[..., None]
    return (r <= 1.0)[..., None] * colour * shade * (0.9 + 0.2 * _smooth_field(size, 8, rng))


def _not_fundus(
    capture: Capture, rng: np.random.Generator, centre: tuple[float, float], radius: float, **_
) -> Capture:
    size = capture.image.shape[0]
    choice = int(rng.integers(4))
    if choice == 0:
        image = _scene(size, rng)
    elif choice == 1:
        image = _document(size, rng)
    elif choice == 2:
        image = _texture(size, rng)
    else:
        image = _plain_disc(size, rng, centre, radius)
    everywhere = np.ones(capture.fov.shape, bool)
    return Capture(
        _finish(image.astype(np.float32), everywhere, rng),
        np.zeros(capture.fov.shape, bool),
        np.zeros_like(capture.labels),
    )


_APPLY = {
    "defocus": _defocus,
    "motion": _motion,
    "underexposed": _exposure(0.06, 0.18),
    "overexposed": _exposure(3.0, 5.0),
    "small_pupil": _small_pupil,
    "eyelid": _eyelid,
    "off_centre": _off_centre,
    "haze": _haze,
    "not_fundus": _not_fundus,
}


def make_ungradable(
    kind: str,
    capture: Capture,
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
) -> Capture:
    """The photograph of `capture` as the capture failure `kind` leaves it.

    Parameters
    ----------
    kind:
        One of `UNGRADABLE_KINDS`.
    capture:
        The finished photograph (uint8 RGB), its field of view and lesion label map.
    rng:
        The image's own quality stream.
    centre, radius:
        The field of view's centre (x, y) and radius in pixels.

    Returns
    -------
    The degraded capture; ``fov`` is all False for ``not_fundus`` (there is no retina).
    """
    if kind not in _APPLY:
        raise ValueError(f"ungradable kind {kind!r} is not one of {UNGRADABLE_KINDS}")
    scale = capture.image.shape[0] / 512
    return _APPLY[kind](capture, rng, centre=centre, radius=radius, scale=scale)
