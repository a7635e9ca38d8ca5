"""The model's pre-processing without TensorFlow, for devices that run the ``.tflite`` file.

The same crop as `drscreen.data.fundus` (the one implementation in TensorFlow ops, which the
serving signature runs in-graph), written with numpy and OpenCV so that an edge device needs
neither TensorFlow nor a re-implementation of its own: a photograph resized plainly instead
of cropped to its field of view gets another grade. Every step follows `drscreen.data.fundus`
exactly: the field-of-view mask (brightest channel above the darkest corner patch's mean plus
`FOV_THRESHOLD`, a 3x3 opening then closing, pixels outside the frame ignored), the square
around the disc (`field_of_view_box`, rounded half to even like ``tf.round``), black padding
past the frame, and TensorFlow's antialiased bilinear resize (``ScaleAndTranslate`` with a
triangle kernel widened by the downscaling factor, weights renormalised at the borders),
applied along each axis as a few weighted sums of shifted rows. Tests hold the crops and the
grades to the TensorFlow path.

Imports numpy, OpenCV and Pillow only (``drscreen.data.image_io`` reads the file with the
checks of every command); never TensorFlow.
"""

import cv2
import numpy as np

from drscreen.data.image_io import ImageError, load_rgb

# The constants of drscreen.data.fundus, which imports TensorFlow (the tests check they agree)
FOV_THRESHOLD = 10.0
MAX_BACKGROUND = 30.0
MIN_FOV_FRACTION = 0.4
MIN_FOV_AREA = float(np.pi / 4 * MIN_FOV_FRACTION**2)
NO_FIELD_OF_VIEW_REASON = "no field of view found: not a fundus photograph, or far too dark"
_CORNER_FRACTION = 16
_KERNEL = np.ones((3, 3), np.uint8)


def field_of_view_mask(image: np.ndarray, threshold: float = FOV_THRESHOLD) -> np.ndarray:
    """`drscreen.data.fundus.field_of_view_mask` of one RGB image (H, W, 3): float32 0/1."""
    intensity = image.max(axis=-1).astype(np.float32)
    height, width = intensity.shape
    k = max(1, min(height, width) // _CORNER_FRACTION)
    corners = (
        intensity[:k, :k],
        intensity[:k, width - k :],
        intensity[height - k :, :k],
        intensity[height - k :, width - k :],
    )
    level = min(min(float(corner.mean(dtype=np.float32)) for corner in corners), MAX_BACKGROUND)
    mask = (intensity - np.float32(level + threshold) > 0).astype(np.uint8)
    # OpenCV's default border ignores pixels outside the frame, as the TensorFlow version does
    mask = cv2.erode(cv2.dilate(cv2.dilate(cv2.erode(mask, _KERNEL), _KERNEL), _KERNEL), _KERNEL)
    return mask.astype(np.float32)


def _extent(profile: np.ndarray, min_count: float) -> tuple[float, float, bool]:
    index = np.flatnonzero(profile >= min_count)
    if index.size == 0:
        return 0.0, 0.0, False
    return float(index[0]), float(index[-1]), True


def _disc_centre(first: float, last: float, diameter: float, length: float) -> float:
    cut_low, cut_high = first <= 0.0, last >= length - 1.0
    if cut_low and not cut_high:
        return last + 1.0 - diameter / 2.0
    if cut_high and not cut_low:
        return first + diameter / 2.0
    return (first + last + 1.0) / 2.0


def field_of_view_box(mask: np.ndarray) -> tuple[int, int, int]:
    """`drscreen.data.fundus.field_of_view_box`: top, left and side of the square crop."""
    height, width = (float(n) for n in mask.shape)
    top, bottom, found_rows = _extent(mask.sum(axis=1), max(1.0, np.floor(width / 100.0)))
    left, right, found_cols = _extent(mask.sum(axis=0), max(1.0, np.floor(height / 100.0)))
    diameter = max(bottom - top + 1.0, right - left + 1.0)
    short_side = min(height, width)
    if found_rows and found_cols and diameter >= MIN_FOV_FRACTION * short_side:
        side = diameter
        centre_y = _disc_centre(top, bottom, diameter, height)
        centre_x = _disc_centre(left, right, diameter, width)
    else:
        side, centre_y, centre_x = short_side, height / 2.0, width / 2.0
    box = np.round(np.array([centre_y - side / 2.0, centre_x - side / 2.0, side]))
    return int(box[0]), int(box[1]), int(box[2])


def _resize_spans(input_size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's antialiased bilinear resize along one axis (``ScaleAndTranslate``,
    triangle kernel, no translation): the first input index of each output's span (O,) and
    the span's weights (O, K), zero past its end."""
    inv_scale = float(np.float32(1.0) / (np.float32(output_size) / np.float32(input_size)))
    kernel_scale = max(inv_scale, 1.0)
    span = min(2 * int(np.ceil(kernel_scale)) + 1, input_size)
    starts = np.zeros(output_size, np.int64)
    weights = np.zeros((output_size, span), np.float32)
    for x in range(output_size):
        sample = (x + 0.5) * inv_scale
        if sample < 0 or sample > input_size:
            continue
        start = min(max(int(np.ceil(sample - kernel_scale - 0.5)), 0), input_size - 1)
        end = min(max(int(np.floor(sample + kernel_scale - 0.5)), 0), input_size - 1) + 1
        row = np.maximum(0.0, 1.0 - np.abs((np.arange(start, end) + 0.5 - sample) / kernel_scale))
        total = row.sum()
        starts[x] = start
        weights[x, : end - start] = row / total if total > 0 else row
    return starts, weights


def _resize_axis0(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` (N, ...) resized along its first axis to ``size``."""
    starts, weights = _resize_spans(values.shape[0], size)
    last = values.shape[0] - 1
    resized = np.zeros((size, *values.shape[1:]), np.float32)
    for offset in range(weights.shape[1]):
        taken = values[np.minimum(starts + offset, last)]
        resized += weights[:, offset].reshape(-1, *([1] * (values.ndim - 1))) * taken
    return resized


def crop_square(image: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """`drscreen.data.fundus.crop_square`: the box (black past the frame) resized to ``size``;
    float32 (size, size, C)."""
    top, left, side = box
    height, width = image.shape[:2]
    square = np.zeros((side, side, image.shape[2]), np.float32)
    rows = slice(max(top, 0), min(top + side, height))
    cols = slice(max(left, 0), min(left + side, width))
    if rows.start < rows.stop and cols.start < cols.stop:
        square[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = image[
            rows, cols
        ]
    rows_resized = _resize_axis0(square, size)
    return _resize_axis0(rows_resized.transpose(1, 0, 2), size).transpose(1, 0, 2)


def crop_to_field_of_view(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`drscreen.data.fundus.crop_to_field_of_view` of one uint8 RGB photograph (H, W, 3).

    Returns
    -------
    image:
        float32 (size, size, 3) in [0, 255]: what the model's ``images`` input takes.
    mask:
        float32 (size, size) field-of-view mask of 0/1.
    """
    mask = field_of_view_mask(image)
    box = field_of_view_box(mask)
    stacked = np.concatenate([image, (mask * 255.0).astype(image.dtype)[..., None]], axis=-1)
    cropped = crop_square(stacked, box, size)
    return np.clip(cropped[..., :3], 0.0, 255.0), (cropped[..., 3] > 127.5).astype(np.float32)


def has_field_of_view(cropped_mask: np.ndarray) -> bool:
    """Whether the crop found a disc (`drscreen.data.fundus.has_field_of_view`)."""
    return float(np.mean(cropped_mask)) >= MIN_FOV_AREA


def load_and_crop(path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A photograph file read with the commands' checks (`drscreen.data.image_io.load_rgb`)
    and cropped for the model: (image float32 (size, size, 3), mask (size, size)).

    Raises
    ------
    drscreen.data.image_io.ImageError
        When the file cannot be used (named, with the reason), or its crop holds no field of
        view (not a fundus photograph).
    """
    image, mask = crop_to_field_of_view(load_rgb(path), size)
    if not has_field_of_view(mask):
        raise ImageError(path, NO_FIELD_OF_VIEW_REASON)
    return image, mask
