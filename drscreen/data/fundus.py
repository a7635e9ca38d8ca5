"""Fundus pre-processing as pure TensorFlow functions: field of view and o_O crop.

The ONE implementation of pre-processing, used by `drscreen prepare`, by tf.data pipelines and
by exported serving signatures. Only TensorFlow ops (no `py_function`), so every function runs
eagerly on numpy input, inside `tf.data.Dataset.map` and inside a `tf.function` with unknown
input shape. Images are float32 or uint8 RGB in [0, 255].

Must not know about files (see `drscreen.data.image_io`) or augmentation
(see `drscreen.data.augment`). Input normalisation is part of the model
(`drscreen.layers.InputNormalization`, `drscreen.layers.GrahamNormalization`).
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from drscreen.layers.base import positive_step
from drscreen.layers.portability import is_portable
from drscreen.layers.windows import spatial_dim

FOV_THRESHOLD = 10.0  # o_O: foreground is brighter than the border level + 10
MAX_BACKGROUND = 30.0  # corners brighter than this are retina, not background
MIN_FOV_FRACTION = 0.4  # a field of view narrower than this share of the short side is noise
# The share of a field-of-view crop that the smallest accepted disc (MIN_FOV_FRACTION of the
# short side) covers; a crop with less found no disc, only the centre square.
MIN_FOV_AREA = float(np.pi / 4 * MIN_FOV_FRACTION**2)
NO_FIELD_OF_VIEW_REASON = "no field of view found: not a fundus photograph, or far too dark"
_CORNER_FRACTION = 16  # corner patches are 1/16 of the short side
_EDGE_TOLERANCE = 0.0  # pixels: an extent this close to the frame is cut by it


def _as_images(images: tf.Tensor | np.ndarray, name: str) -> tuple[tf.Tensor, bool]:
    """A batch (N, H, W, C) in the input's dtype, and whether the input was one image."""
    images = tf.convert_to_tensor(images)
    rank = images.shape.rank
    if rank not in (3, 4) or images.shape[-1] not in (3, None):
        raise ValueError(
            f"{name}: expected an RGB image (H, W, 3) or a batch (N, H, W, 3), "
            f"got shape {images.shape}"
        )
    single = rank == 3
    return (images[tf.newaxis] if single else images), single


def _as_one_image(image: tf.Tensor | np.ndarray, name: str) -> tf.Tensor:
    """`image` with static shape (H, W, 3); checked when traced, or when run if the traced
    shape leaves the rank or the channels unknown."""
    image = tf.convert_to_tensor(image)
    rank = image.shape.rank
    if rank is not None and (rank != 3 or image.shape[-1] not in (3, None)):
        raise ValueError(f"{name}: expected one image (H, W, 3), got shape {image.shape}")
    if rank is None or image.shape[-1] is None:
        shape = tf.shape(image)
        is_rgb = tf.equal(tf.size(shape), 3) & tf.equal(tf.reduce_prod(shape[-1:]), 3)
        check = tf.debugging.Assert(
            is_rgb, [f"{name}: expected one image (H, W, 3), got shape", shape]
        )
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        image = tf.ensure_shape(image, [None, None, 3])
    return image


def _background_level(intensity: tf.Tensor) -> tf.Tensor:
    """Per-image background level (N, 1, 1, 1): the darkest of the four corner patch means."""
    height, width = spatial_dim(intensity, 1), spatial_dim(intensity, 2)
    k = _corner_side(height, width)
    corners = (
        intensity[:, :k, :k],
        intensity[:, :k, width - k :],
        intensity[:, height - k :, :k],
        intensity[:, height - k :, width - k :],
    )
    means = [tf.reduce_mean(corner, axis=[1, 2], keepdims=True) for corner in corners]
    darkest = tf.minimum(tf.minimum(means[0], means[1]), tf.minimum(means[2], means[3]))
    return tf.minimum(darkest, MAX_BACKGROUND)


def _corner_side(height: int | tf.Tensor, width: int | tf.Tensor) -> int | tf.Tensor:
    """Side of the corner patches: 1/16 of the short side, at least 1 (a Python int when the
    frame size is static, so an exported graph holds no shape arithmetic)."""
    if isinstance(height, int) and isinstance(width, int):
        return max(1, min(height, width) // _CORNER_FRACTION)
    return tf.maximum(1, tf.minimum(height, width) // _CORNER_FRACTION)


def field_of_view_mask(
    images: tf.Tensor | np.ndarray, threshold: float = FOV_THRESHOLD
) -> tf.Tensor:
    """The illuminated disc of fundus photographs.

    The o_O rule made robust: a pixel belongs to the field of view when its brightest channel
    is above the background level plus `threshold`; the background level is the darkest of
    the four corner patch means (corners lie outside the disc even when the disc is cut by
    the frame), capped at `MAX_BACKGROUND` so that a photograph without dark corners is all
    field of view. A 3x3 morphological opening then closing removes noise specks outside and
    fills dark holes inside without moving the disc edge (o_O's blur would widen the disc);
    pixels outside the frame are ignored, as OpenCV's morphology does.

    In-process TensorFlow computes it with bool morphology (3x faster on full photographs);
    inside `drscreen.layers.portable()` (the exported heatmap graph) with float 0/1 ops that
    LiteRT's XNNPACK delegate runs, which has no bool kernels: `positive_step` of the
    difference (``a - b > 0`` exactly when ``a > b``), 3x3 'SAME' max pooling for dilation
    and ``1 - maxpool(1 - m)`` for erosion, exact on 0/1 values.

    Parameters
    ----------
    images:
        One image (H, W, 3) or a batch (N, H, W, 3), float or uint8 RGB in [0, 255].
    threshold:
        Intensity above the background level, in 0-255 units.

    Returns
    -------
    tf.Tensor
        float32 mask of 0/1, shape (H, W) or (N, H, W).
    """
    batch, single = _as_images(images, "field_of_view_mask")
    # The channel maximum is taken in the input's dtype (one channel, not three) with
    # element-wise maxima of unit-stride slices, which keep the axis: no reduction, no unpack.
    brightest = tf.maximum(tf.maximum(batch[..., 0:1], batch[..., 1:2]), batch[..., 2:3])
    intensity = tf.cast(brightest, tf.float32)
    level = _background_level(intensity)
    excess = intensity - (level + threshold)
    if is_portable():
        mask = positive_step(excess)
        mask = _erode(_dilate(_dilate(_erode(mask))))  # opening, then closing
    else:
        mask = excess > 0
        mask = _erode_bool(_dilate_bool(_dilate_bool(_erode_bool(mask))))
        mask = tf.cast(mask, tf.float32)
    # A reshape drops the channel axis: a slice that drops it runs outside XNNPACK.
    mask = tf.reshape(mask, [-1, spatial_dim(mask, 1), spatial_dim(mask, 2)])
    return mask[0] if single else mask


def _dilate(mask: tf.Tensor) -> tf.Tensor:
    """3x3 dilation of a 0/1 (N, H, W, 1) mask; pixels outside the frame are ignored."""
    return tf.nn.max_pool2d(mask, 3, 1, "SAME")


def _erode(mask: tf.Tensor) -> tf.Tensor:
    """3x3 erosion of a 0/1 (N, H, W, 1) mask, the dual of `_dilate` (exact on 0/1)."""
    return 1.0 - tf.nn.max_pool2d(1.0 - mask, 3, 1, "SAME")


def _dilate_bool(mask: tf.Tensor) -> tf.Tensor:
    """`_dilate` of a bool (N, H, W, 1) mask."""
    return _neighbourhood(mask, tf.logical_or, False)


def _erode_bool(mask: tf.Tensor) -> tf.Tensor:
    """`_erode` of a bool (N, H, W, 1) mask."""
    return _neighbourhood(mask, tf.logical_and, True)


def _neighbourhood(mask: tf.Tensor, combine: Callable, outside: bool) -> tf.Tensor:
    """`combine` of each pixel's 3x3 neighbourhood of a bool (N, H, W, 1) mask, as two 1-D
    passes; pixels outside the frame count as `outside` (the identity of `combine`, so
    they are ignored, like 'SAME' max pooling)."""
    return _neighbourhood_along(
        _neighbourhood_along(mask, 2, combine, outside), 1, combine, outside
    )


def _neighbourhood_along(mask: tf.Tensor, axis: int, combine: Callable, outside: bool):
    """One 1-D pass of `_neighbourhood`. The border is concatenated rather than padded:
    ONNX Runtime has no boolean Pad, and bool is 3-5x faster here than 0/1 numbers."""
    edge = tf.zeros_like(mask[:, :1] if axis == 1 else mask[:, :, :1])
    edge = tf.logical_not(edge) if outside else edge
    bordered = tf.concat([edge, mask, edge], axis=axis)
    if axis == 1:
        return combine(combine(bordered[:, :-2], bordered[:, 1:-1]), bordered[:, 2:])
    return combine(combine(bordered[:, :, :-2], bordered[:, :, 1:-1]), bordered[:, :, 2:])


def _extent(profile: tf.Tensor, min_count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """First and last index (float32) where `profile >= min_count`, and whether any exists."""
    index = tf.cast(tf.where(profile >= min_count)[:, 0], tf.float32)
    found = tf.size(index) > 0
    first = tf.where(found, tf.reduce_min(index), 0.0)
    last = tf.where(found, tf.reduce_max(index), 0.0)
    return first, last, found


def _disc_centre(
    first: tf.Tensor, last: tf.Tensor, diameter: tf.Tensor, length: tf.Tensor
) -> tf.Tensor:
    """Centre of a disc of `diameter` along one axis, given its visible extent."""
    cut_low = first <= _EDGE_TOLERANCE
    cut_high = last >= length - 1.0 - _EDGE_TOLERANCE
    return tf.where(
        cut_low & ~cut_high,
        last + 1.0 - diameter / 2.0,
        tf.where(cut_high & ~cut_low, first + diameter / 2.0, (first + last + 1.0) / 2.0),
    )


def field_of_view_box(mask: tf.Tensor) -> tf.Tensor:
    """The square around the field-of-view disc: the o_O crop rule, improved.

    The disc diameter is the larger extent of the mask. Along an axis where the disc is cut by
    the frame on one side only (Kaggle photographs clipped at the top or bottom), the centre is
    placed one radius from the uncut edge, so the square is centred on the disc and reaches
    outside the frame (padded with black by `crop_square`). Rows and columns with fewer than 1%
    of mask pixels are ignored (noise). When no disc of at least `MIN_FOV_FRACTION` of the
    short side is found, the box is the centre square.

    Parameters
    ----------
    mask:
        float32 mask (H, W) from `field_of_view_mask`.

    Returns
    -------
    tf.Tensor
        int32 (3,): top row, left column and side of the square, in pixels; top and left may
        be negative and the square may extend past the frame.
    """
    mask = tf.convert_to_tensor(mask, tf.float32)
    height = tf.cast(tf.shape(mask)[0], tf.float32)
    width = tf.cast(tf.shape(mask)[1], tf.float32)
    top, bottom, found_rows = _extent(
        tf.reduce_sum(mask, axis=1), tf.maximum(1.0, tf.floor(width / 100.0))
    )
    left, right, found_cols = _extent(
        tf.reduce_sum(mask, axis=0), tf.maximum(1.0, tf.floor(height / 100.0))
    )
    diameter = tf.maximum(bottom - top + 1.0, right - left + 1.0)
    short_side = tf.minimum(height, width)
    valid = found_rows & found_cols & (diameter >= MIN_FOV_FRACTION * short_side)
    centre_y = _disc_centre(top, bottom, diameter, height)
    centre_x = _disc_centre(left, right, diameter, width)
    side = tf.where(valid, diameter, short_side)
    centre_y = tf.where(valid, centre_y, height / 2.0)
    centre_x = tf.where(valid, centre_x, width / 2.0)
    box = tf.stack([centre_y - side / 2.0, centre_x - side / 2.0, side])
    return tf.cast(tf.round(box), tf.int32)


def crop_square(image: tf.Tensor, box: tf.Tensor, size: int) -> tf.Tensor:
    """Crops a square `box` from `image` (black outside the frame) and resizes it.

    Parameters
    ----------
    image:
        (H, W, C) float or integer tensor, any number of channels (cropped in its dtype).
    box:
        int32 (3,) top, left, side from `field_of_view_box`.
    size:
        Output side in pixels.

    Returns
    -------
    tf.Tensor
        float32 (size, size, C). Bilinear resizing with antialiasing, so it averages like an
        area filter when shrinking and interpolates when enlarging.
    """
    image = tf.convert_to_tensor(image)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, left, side = box[0], box[1], box[2]
    pad_top = tf.maximum(0, -top)
    pad_left = tf.maximum(0, -left)
    pad_bottom = tf.maximum(0, top + side - height)
    pad_right = tf.maximum(0, left + side - width)
    padded = tf.pad(image, [[pad_top, pad_bottom], [pad_left, pad_right], [0, 0]])
    square = tf.slice(padded, [top + pad_top, left + pad_left, 0], [side, side, -1])
    square = tf.cast(square, tf.float32)
    return tf.image.resize(square, [size, size], method="bilinear", antialias=True)


def crop_to_field_of_view(image: tf.Tensor | np.ndarray, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Crops a fundus photograph to the square around its field of view and resizes it.

    Parameters
    ----------
    image:
        (H, W, 3) float or uint8 RGB in [0, 255], any size (dynamic shapes allowed).
    size:
        Output side in pixels.

    Returns
    -------
    image:
        float32 (size, size, 3) in [0, 255].
    mask:
        float32 (size, size) field-of-view mask of 0/1.
    """
    cropped_image, cropped_mask, _ = crop_to_field_of_view_box(image, size)
    return cropped_image, cropped_mask


def crop_to_field_of_view_box(
    image: tf.Tensor | np.ndarray, size: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`crop_to_field_of_view`, and the square cropped (`field_of_view_box`: top, left and
    side in the photograph's pixels), to map a heatmap back onto the photograph."""
    image = _as_one_image(image, "crop_to_field_of_view")
    mask = field_of_view_mask(image)
    box = field_of_view_box(mask)
    # Image and mask are cropped together, in the input's dtype (less memory than float32).
    stacked = tf.concat([image, tf.cast(mask[..., tf.newaxis] * 255.0, image.dtype)], axis=-1)
    cropped = crop_square(stacked, box, size)
    cropped_image = tf.clip_by_value(cropped[..., :3], 0.0, 255.0)
    cropped_mask = tf.cast(cropped[..., 3] > 127.5, tf.float32)
    cropped_image.set_shape([size, size, 3])
    cropped_mask.set_shape([size, size])
    return cropped_image, cropped_mask, box


def has_field_of_view(cropped_mask: tf.Tensor | np.ndarray) -> tf.Tensor:
    """Whether crops found a disc: mask mean >= `MIN_FOV_AREA`, for (S, S) or (N, S, S)."""
    mask = tf.cast(tf.convert_to_tensor(cropped_mask), tf.float32)
    return tf.reduce_mean(mask, axis=[-2, -1]) >= MIN_FOV_AREA


def decode_and_preprocess(encoded_bytes: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes a JPEG/PNG/BMP/GIF string and crops it with `crop_to_field_of_view`.

    Parameters
    ----------
    encoded_bytes:
        Scalar string tensor holding the encoded file.
    size:
        Output side in pixels.

    Returns
    -------
    tuple[tf.Tensor, tf.Tensor]
        float32 image (size, size, 3) in [0, 255] and float32 mask (size, size).
    """
    image = tf.io.decode_image(encoded_bytes, channels=3, expand_animations=False)
    return crop_to_field_of_view(image, size)
