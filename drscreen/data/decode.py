"""Decoding encoded photographs in TensorFlow ops, with the checks of `drscreen.data.image_io`.

Used inside the exported ``serving_default`` signature, so TF Serving and `drscreen serve`
refuse what the commands refuse, for the same reasons: an empty string; a format other than
JPEG, PNG, GIF and BMP; more than ``max_pixels`` pixels by the header's dimensions, checked
before decoding (decompression bombs); undecodable or truncated data (TensorFlow's decoders;
bytes after a JPEG's end-of-image marker are fine); grayscale (one or two channels, or three
that carry no colour); fewer than ``min_side`` pixels a side; no field of view. CMYK JPEGs
are converted by the decoder, 16-bit PNGs reduced to 8 bits, an alpha channel composited
over black, and a JPEG's EXIF orientation applied (TensorFlow's decoders ignore it; Pillow's
`ImageOps.exif_transpose` is the reference). A failed check raises ``InvalidArgumentError``
with its reason. Only TensorFlow ops: runs eagerly, in tf.data and in a SavedModel.
"""

import tensorflow as tf

from drscreen.data.fundus import NO_FIELD_OF_VIEW_REASON, crop_to_field_of_view, has_field_of_view
from drscreen.data.image_io import (
    GRAYSCALE_REASON,
    GRAYSCALE_TOLERANCE,
    TOO_MANY_PIXELS,
    TOO_SMALL,
)

FORMATS_REASON = "not a decodable image (drscreen reads JPEG, PNG, GIF and BMP)"
EMPTY_REASON = "empty image (0 bytes)"
_EXIF_SEARCH_BYTES = 65_536 + 4  # an APP1 segment is at most 64 KiB, after SOI and APP0
_MAX_IFD_ENTRIES = 512
_ORIENTATION_TAG = 0x0112


def _bytes(data: tf.Tensor, start, length: int) -> tf.Tensor:
    """``length`` bytes of ``data`` from ``start`` as int64, zero past its end."""
    start = tf.minimum(tf.cast(start, tf.int32), tf.strings.length(data))
    raw = tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8)
    return tf.cast(tf.pad(raw, [[0, length - tf.shape(raw)[0]]]), tf.int64)


def _number(data: tf.Tensor, offsets, size: int, little_endian) -> tf.Tensor:
    """Unsigned integers of ``size`` bytes at ``offsets`` of the int64 bytes ``data``."""
    offsets = tf.clip_by_value(tf.cast(offsets, tf.int64), 0, tf.size(data, tf.int64) - size)
    digits = [tf.gather(data, offsets + i) for i in range(size)]
    little = sum(digit * 256**i for i, digit in enumerate(digits))
    big = sum(digit * 256**i for i, digit in enumerate(reversed(digits)))
    return tf.where(little_endian, little, big)


def _check(condition: tf.Tensor, message: tf.Tensor | str) -> tf.Operation:
    return tf.debugging.Assert(condition, [message])


def header_size(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Whether ``encoded`` is a JPEG, PNG, GIF or BMP, and its height and width (int64) by
    the header alone (0 for other formats)."""
    head = _bytes(encoded, 0, 32)
    is_jpeg = tf.reduce_all(tf.equal(head[:3], [0xFF, 0xD8, 0xFF]))
    is_png = tf.reduce_all(tf.equal(head[:8], [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
    is_gif = tf.reduce_all(tf.equal(head[:4], [0x47, 0x49, 0x46, 0x38]))
    is_bmp = tf.reduce_all(tf.equal(head[:2], [0x42, 0x4D]))
    png = _number(head, [20, 16], 4, False)
    gif = _number(head, [8, 6], 2, True)
    bmp = _number(head, [22, 18], 4, True)
    bmp = tf.abs(tf.where(bmp >= 2**31, bmp - 2**32, bmp))  # signed; negative: top-down
    height_width = tf.cond(
        is_jpeg,
        lambda: tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64),
        lambda: tf.where(is_png, png, tf.where(is_gif, gif, tf.where(is_bmp, bmp, 0))),
    )
    known = is_jpeg | is_png | is_gif | is_bmp
    return known, height_width[0], height_width[1]


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (int32 1-8) of a JPEG's APP1 segment; 1 when there is none."""
    head = tf.strings.substr(encoded, 0, _EXIF_SEARCH_BYTES)
    parts = tf.strings.split(head, sep="Exif\x00\x00", maxsplit=1)
    found = tf.size(parts) > 1
    marker = _bytes(head, tf.strings.length(parts[0]) - 4, 2)  # APP1: FF E1, length, "Exif"
    tiff = _bytes(head, tf.strings.length(parts[0]) + 6, _EXIF_SEARCH_BYTES)
    little = tf.reduce_all(tf.equal(tiff[:2], [0x49, 0x49]))
    big = tf.reduce_all(tf.equal(tiff[:2], [0x4D, 0x4D]))
    ifd = _number(tiff, [4], 4, little)[0]
    count = tf.minimum(_number(tiff, [ifd], 2, little)[0], _MAX_IFD_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    is_orientation = tf.equal(_number(tiff, entries, 2, little), _ORIENTATION_TAG)
    is_orientation &= tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64) < count
    values = _number(tiff, entries + 8, 2, little)
    value = tf.gather(values, tf.argmax(tf.cast(is_orientation, tf.int32)))
    valid = found & tf.reduce_all(tf.equal(marker, [0xFF, 0xE1])) & (little | big)
    valid &= tf.reduce_any(is_orientation) & (value >= 1) & (value <= 8)
    return tf.cast(tf.where(valid, value, 1), tf.int32)


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """``image`` (H, W, C) turned upright for an EXIF ``orientation`` 1-8."""

    def transposed() -> tf.Tensor:
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180°
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        transposed,  # 5
        lambda: tf.reverse(transposed(), [1]),  # 6: shown rotated 90° clockwise
        lambda: tf.reverse(transposed(), [0, 1]),  # 7: transverse
        lambda: tf.reverse(transposed(), [0]),  # 8: shown rotated 90° counter-clockwise
    ]
    return tf.switch_case(tf.convert_to_tensor(orientation, tf.int32) - 1, branches)


def decode_photograph(encoded: tf.Tensor, min_side: int, max_pixels: int) -> tf.Tensor:
    """A scalar string of an encoded photograph as upright uint8 RGB (H, W, 3), checked."""
    encoded = tf.convert_to_tensor(encoded, tf.string)
    known, height, width = header_size(encoded)
    checks = [
        _check(tf.strings.length(encoded) > 0, EMPTY_REASON),
        _check(known, FORMATS_REASON),
    ]
    with tf.control_dependencies(checks):
        pixels = height * width
        limit = tf.constant(max_pixels, tf.int64)
        too_many = tf.strings.format(TOO_MANY_PIXELS, (width, height, pixels, limit))
        checks = [_check(pixels <= limit, too_many)]
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
        channels = tf.shape(image)[2]
        checks = [_check(channels >= 3, GRAYSCALE_REASON)]
    with tf.control_dependencies(checks):
        rgb = tf.cast(image[..., :3], tf.int32)
        alpha = tf.cond(
            tf.equal(channels, 4),
            lambda: tf.cast(image[..., 3:], tf.int32),
            lambda: tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), 255),
        )
        rgb = tf.cast((rgb * alpha + 127) // 255, tf.uint8)  # composited over black
        rgb = tf.ensure_shape(orient(rgb, exif_orientation(encoded)), [None, None, 3])
        spread = tf.reduce_max(rgb, axis=-1) - tf.reduce_min(rgb, axis=-1)
        colourful = tf.reduce_mean(tf.cast(spread, tf.float32)) >= GRAYSCALE_TOLERANCE
        shape = tf.shape(rgb, out_type=tf.int64)
        small = tf.strings.format(TOO_SMALL, (shape[1], shape[0], tf.constant(min_side)))
        checks = [
            _check(colourful, GRAYSCALE_REASON),
            _check(tf.reduce_min(shape[:2]) >= min_side, small),
        ]
    with tf.control_dependencies(checks):
        return tf.identity(rgb)


def decode_and_crop(
    encoded: tf.Tensor, size: int, min_side: int, max_pixels: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """`decode_photograph`, then `crop_to_field_of_view`; refuses a crop without a disc.

    Returns float32 image (size, size, 3) in [0, 255] and float32 mask (size, size).
    """
    image, mask = crop_to_field_of_view(decode_photograph(encoded, min_side, max_pixels), size)
    with tf.control_dependencies([_check(has_field_of_view(mask), NO_FIELD_OF_VIEW_REASON)]):
        return tf.identity(image), tf.identity(mask)
