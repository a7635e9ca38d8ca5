"""Reading fundus photographs and lesion masks from disk with Pillow, with clear errors.

Owns the checks that a file is a usable colour photograph, in the order they can be made:
present and non-empty; a format Pillow reads; at most ``max_pixels`` pixels by the header's
dimensions, refused before anything is decoded (decompression bombs); decoded in full
(truncated or undecodable data is refused; bytes after a JPEG's end-of-image marker are not an
error); EXIF orientation applied, so the photograph is upright as a viewer shows it; colour
(grayscale refused, CMYK/YCbCr converted, alpha composited over black, 16 bits reduced to
8); at least ``min_side`` pixels high and wide. `drscreen.data.decode` applies the same rules
in TensorFlow ops inside the serving signature. Pre-processing lives in
`drscreen.data.fundus`.
"""

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_IMAGE_SIDE = 32
DEFAULT_MAX_PIXELS = 40_000_000  # fundus cameras take 5-24 MP; decoding 40 MP needs ~1 GB
# A photograph whose channels differ by less than this on average (0-255 levels, max minus
# min channel per pixel) carries no colour: a grayscale image stored as RGB.
GRAYSCALE_TOLERANCE = 2.0

_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF8": "GIF", b"BM": "BMP"}
_PNG_END = b"IEND\xaeB`\x82"  # Pillow decodes a PNG cut after its pixel data without error
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the path and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# Reasons, shared with the in-graph checks of `drscreen.data.decode` ("{}": `str.format` and
# `tf.strings.format` both fill them in order).
TOO_MANY_PIXELS = "{}x{} = {} pixels, above the limit of {} (refused before decoding)"
TOO_SMALL = "too small ({}x{}, need at least {} px)"
GRAYSCALE_REASON = "grayscale, expected a colour fundus photograph"


def _read_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise ImageError(path, "file not found")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ImageError(path, "empty file")
    return data


def _open(path: str, max_pixels: int) -> Image.Image:
    """The file's image, decoded in full and turned upright by its EXIF orientation."""
    data = _read_bytes(path)
    try:
        with warnings.catch_warnings():  # the limit is ours: Pillow's warning is not needed
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ImageError(path, f"too many pixels to decode ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        known = [name for magic, name in _SIGNATURES.items() if data.startswith(magic)]
        if known:  # the header itself is cut or broken
            raise ImageError(path, f"truncated or corrupt {known[0]} ({error})") from error
        raise ImageError(path, "not a decodable image") from error
    width, height = image.size
    if height * width > max_pixels:
        raise ImageError(path, TOO_MANY_PIXELS.format(width, height, width * height, max_pixels))
    try:
        image.load()
        if image.format == "PNG" and _PNG_END not in data:
            raise OSError("no IEND chunk")
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(path, f"truncated or corrupt {image.format} ({error})") from error


def _composite_on_black(image: Image.Image) -> np.ndarray:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)


def is_grayscale(rgb: np.ndarray) -> bool:
    """Whether an RGB uint8 image carries no colour (see `GRAYSCALE_TOLERANCE`).

    The per-pixel spread max - min of the three channels, written channel by channel:
    ``np.ptp(rgb, axis=-1)`` took 48 ms on a 768 x 1024 photograph, 15 times the decoding.
    """
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return float(spread.mean()) < GRAYSCALE_TOLERANCE


def load_rgb(
    path: str, min_side: int = MIN_IMAGE_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Loads a colour photograph as RGB, upright.

    Parameters
    ----------
    path:
        Image file (any format Pillow reads: JPEG, PNG, TIFF, BMP, ...). 16-bit images are
        reduced to 8 bits, CMYK converted, an alpha channel composited over black.
    min_side:
        Smallest accepted height or width in pixels.
    max_pixels:
        Largest accepted height × width, checked on the header before decoding.

    Returns
    -------
    np.ndarray
        uint8 array of shape (H, W, 3), RGB order, EXIF orientation applied.

    Raises
    ------
    ImageError
        Naming the path and the reason: file not found, empty file, not a decodable image,
        too many pixels, truncated or corrupt, grayscale, or too small.
    """
    image = _open(path, max_pixels)
    if image.mode in _GRAYSCALE_MODES:
        raise ImageError(path, GRAYSCALE_REASON)
    if "A" in image.mode or image.mode == "P":
        rgb = _composite_on_black(image)
    else:
        rgb = np.asarray(image.convert("RGB"))
    if is_grayscale(rgb):
        raise ImageError(path, GRAYSCALE_REASON)
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise ImageError(path, TOO_SMALL.format(width, height, min_side))
    return rgb


def load_mask_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Loads a lesion-mask image as stored (uint8, (H, W) or (H, W, C)), for dataset-specific
    binarization such as `drscreen.data.readers.binarize_mask`.

    Raises
    ------
    ImageError
        Naming the path and the reason: file not found, empty file, not a decodable image,
        too many pixels, truncated or corrupt, unsupported pixel type.
    """
    image = _open(path, max_pixels)
    if image.mode in ("1", "P"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    if image.mode.startswith("I;16"):
        return (np.asarray(image, dtype=np.uint16) // 257).astype(np.uint8)
    if image.mode in ("I", "F"):
        raise ImageError(path, f"unsupported pixel type (mode {image.mode})")
    return np.asarray(image.convert("RGB") if image.mode == "CMYK" else image)


def load_mask(path: str, threshold: int = 0) -> np.ndarray:
    """Loads a binary lesion mask.

    Parameters
    ----------
    path:
        Mask image; colour masks (e.g. IDRiD's red masks) are reduced by the channel maximum.
    threshold:
        A pixel is in the mask when its value is above this (0: any non-zero pixel).

    Returns
    -------
    np.ndarray
        bool array of shape (H, W).

    Raises
    ------
    ImageError
        Naming the path and the reason: file not found, empty file, truncated or corrupt,
        not a decodable image.
    """
    mask = load_mask_image(path)
    if mask.ndim == 3:
        mask = mask[:, :, :3].max(axis=2)
    return mask > threshold
