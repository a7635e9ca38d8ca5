"""The bad-input matrix: photographs every command and server protocol must handle, and how.

Each `Case` is a file (name and bytes) with its expected outcome: ``reason`` for the
commands (`drscreen.data.image_io`, Pillow) and ``serving_reason`` for the ``serving_default``
signature (`drscreen.data.decode`, TensorFlow's decoders) are substrings of the rejection,
or None when the photograph is accepted; ``same_as`` names the case whose score an accepted
one must reproduce (the same photograph stored differently). Built from one synthetic fundus
photograph (an orange disc with a vessel and noise on black).
"""

import dataclasses
import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

from tests.data.fundus_test import draw_fundus

SIDE = 96


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    file_name: str
    data: bytes
    reason: str | None
    serving_reason: str | None
    same_as: str | None = None


def photograph() -> np.ndarray:
    """The matrix's colour fundus photograph, RGB uint8 (96, 120, 3)."""
    return draw_fundus(SIDE, SIDE + 24, (60, 48), 44, seed=3, noise=6.0)


def _png(image: np.ndarray) -> bytes:
    stored = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    return cv2.imencode(".png", stored)[1].tobytes()


def _jpeg(image: np.ndarray) -> bytes:
    stored = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    return cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _pillow(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _with_jpeg_size(jpeg: bytes, height: int, width: int) -> bytes:
    """``jpeg`` with the dimensions of its SOF0 header replaced (a decompression-bomb header)."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def _with_png_size(png: bytes, height: int, width: int) -> bytes:
    """``png`` with an IHDR claiming ``height`` × ``width`` (its CRC recomputed)."""
    ihdr = png[12:29]  # type + 13 bytes of data
    patched = ihdr[:4] + struct.pack(">II", width, height) + ihdr[12:]
    crc = struct.pack(">I", zlib.crc32(patched) & 0xFFFFFFFF)
    return png[:12] + patched + crc + png[33:]


def cases() -> dict[str, Case]:
    """Every case of the matrix, by name."""
    rgb = photograph()
    jpeg, png = _jpeg(rgb), _png(rgb)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    rotated = np.ascontiguousarray(np.rot90(rgb, k=1))  # stored turned left ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90° clockwise to display"
    exif_jpeg = _pillow(Image.fromarray(rotated), "JPEG", quality=95, exif=exif.tobytes())
    upright_of_exif = np.rot90(np.asarray(Image.open(io.BytesIO(exif_jpeg))), k=-1)
    with_alpha = rgb.copy()
    outside = rgb.max(axis=-1) == 0
    with_alpha[outside] = 255  # white where transparent: ignoring alpha would change the image
    alpha = np.where(outside, 0, 255).astype(np.uint8)
    dark = np.zeros_like(rgb)
    dark[...] = (20, 6, 4)
    listed = [
        Case("JPEG", "eye.jpg", jpeg, None, None),
        Case("PNG", "eye.png", png, None, None),
        Case("empty", "empty.jpg", b"", "empty file", "empty image"),
        Case("non-image", "text.jpg", b"this is not an image " * 8, "not a decodable image",
             "not a decodable image"),
        Case("truncated JPEG", "cut.jpg", jpeg[: len(jpeg) // 2], "truncated or corrupt JPEG",
             "Invalid JPEG data"),
        Case("trailing bytes after JPEG end", "trailing.jpg",
             jpeg + b"\x00" * 16 + b"maker notes after the end-of-image marker", None, None,
             same_as="JPEG"),
        Case("grayscale 8-bit", "gray8.jpg", _jpeg(gray), "grayscale", "grayscale"),
        Case("grayscale 16-bit", "gray16.png", _png(gray.astype(np.uint16) * 257), "grayscale",
             "grayscale"),
        Case("grayscale stored as RGB", "gray_rgb.png", _png(np.dstack([gray] * 3)),
             "grayscale", "grayscale"),
        Case("CMYK JPEG", "cmyk.jpg",
             _pillow(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95), None, None),
        Case("RGBA", "rgba.png", _pillow(Image.fromarray(np.dstack([with_alpha, alpha])), "PNG"),
             None, None, same_as="PNG"),
        Case("16-bit RGB", "rgb16.png", _png(rgb.astype(np.uint16) * 257), None, None,
             same_as="PNG"),
        Case("EXIF-rotated", "exif6.jpg", exif_jpeg, None, None, same_as="EXIF reference"),
        Case("EXIF reference", "exif6_upright.png", _png(np.ascontiguousarray(upright_of_exif)),
             None, None),
        Case("1x1", "one.png", _png(rgb[48:49, 60:61]), "too small", "too small"),
        Case("20 px", "twenty.png", _png(cv2.resize(rgb, (20, 20))), "too small", "too small"),
        Case("12000 x 12000 JPEG", "bomb.jpg", _with_jpeg_size(jpeg, 12000, 12000),
             "above the limit", "above the limit"),
        Case("12000 x 12000 PNG", "bomb.png", _with_png_size(png, 12000, 12000),
             "above the limit", "above the limit"),
        Case("unicode and space name", "œil gauche é 1.jpg", jpeg, None, None, same_as="JPEG"),
        Case("no field of view", "dark.png", _png(dark), "no field of view", "no field of view"),
    ]  # fmt: skip
    return {case.name: case for case in listed}


def accepted() -> list[str]:
    return [name for name, case in cases().items() if case.reason is None]


def rejected() -> list[str]:
    return [name for name, case in cases().items() if case.reason is not None]
