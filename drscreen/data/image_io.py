"""Reading fundus photographs and lesion masks from disk with OpenCV, with clear errors.

Owns the checks that a file is a usable colour photograph (present, non-empty, a complete
image, colour, large enough). Pre-processing lives in `drscreen.data.fundus`.
"""

import os

import cv2
import numpy as np

MIN_IMAGE_SIDE = 32

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_TRAILING_PADDING = b"\x00\r\n \t"


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the path and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _read_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise ImageError(path, "file not found")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ImageError(path, "empty file")
    return data


def _check_complete(path: str, data: bytes) -> None:
    """Rejects JPEG/PNG files cut short, which OpenCV would decode partially without error."""
    tail = data.rstrip(_TRAILING_PADDING)
    if data.startswith(_JPEG_START) and not tail.endswith(_JPEG_END):
        raise ImageError(path, "truncated or corrupt JPEG (no end-of-image marker)")
    if data.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_END):
        raise ImageError(path, "truncated or corrupt PNG (no IEND chunk)")


def _decode(path: str, data: bytes) -> np.ndarray:
    _check_complete(path, data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError(path, "not a decodable image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(path, f"unsupported pixel type {image.dtype}")
    return image


def load_rgb(path: str, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Loads a colour photograph as RGB.

    Parameters
    ----------
    path:
        Image file (any format OpenCV reads: JPEG, PNG, TIFF, ...). 16-bit images are scaled
        to 8 bits, an alpha channel is dropped.
    min_side:
        Smallest accepted height or width in pixels.

    Returns
    -------
    np.ndarray
        uint8 array of shape (H, W, 3), RGB order.

    Raises
    ------
    ImageError
        Naming the path and the reason: file not found, empty file, truncated or corrupt,
        not a decodable image, grayscale, or too small.
    """
    image = _decode(path, _read_bytes(path))
    if image.ndim == 2 or image.shape[2] == 1:
        raise ImageError(path, "grayscale, expected colour fundus photograph")
    image = image[:, :, :3]
    if np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(
        image[:, :, 1], image[:, :, 2]
    ):
        raise ImageError(path, "grayscale, expected colour fundus photograph")
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        raise ImageError(path, f"too small ({height}x{width}, need at least {min_side} px)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_mask_image(path: str) -> np.ndarray:
    """Loads a lesion-mask image as stored (uint8, (H, W) or (H, W, C)), for dataset-specific
    binarization such as `drscreen.data.readers.binarize_mask`.

    Raises
    ------
    ImageError
        Naming the path and the reason: file not found, empty file, truncated or corrupt,
        not a decodable image.
    """
    return _decode(path, _read_bytes(path))


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
