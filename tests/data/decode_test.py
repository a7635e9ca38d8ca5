"""The serving signature's in-graph decoding against Pillow (`image_io`): the bad-input matrix."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from drscreen.data import decode
from drscreen.data.image_io import DEFAULT_MAX_PIXELS, MIN_IMAGE_SIDE, ImageError, load_rgb
from tests import bad_inputs

CASES = bad_inputs.cases()


def _decode(data: bytes) -> np.ndarray:
    return decode.decode_photograph(tf.constant(data), MIN_IMAGE_SIDE, DEFAULT_MAX_PIXELS).numpy()


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode_in_graph(data):
    return decode.decode_and_crop(data, 32, MIN_IMAGE_SIDE, DEFAULT_MAX_PIXELS)


@pytest.mark.parametrize("name", bad_inputs.accepted())
def test_accepted_photographs_decode_as_pillow_does(name, tmp_path):
    """TensorFlow's decode (+ alpha, EXIF) equals Pillow's within JPEG decoder rounding."""
    case = CASES[name]
    path = tmp_path / case.file_name
    path.write_bytes(case.data)
    expected = load_rgb(str(path))
    decoded = _decode(case.data)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    lossless = case.file_name.endswith(".png")
    difference = np.abs(decoded.astype(int) - expected)
    assert difference.max() <= (0 if lossless else 16), difference.max()
    assert difference.mean() <= (0 if lossless else 2.0), difference.mean()
    if case.same_as:
        reference = _decode(CASES[case.same_as].data)
        assert np.abs(decoded.astype(int) - reference).mean() <= (0 if lossless else 2.0)


@pytest.mark.parametrize("name", bad_inputs.rejected())
def test_rejected_photographs_raise_the_commands_reason(name):
    """Each rejected case fails inside a graph with its reason (as an InvalidArgumentError)."""
    case = CASES[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=case.serving_reason):
        _decode_in_graph(tf.constant(case.data))


def test_pixel_limit_is_checked_on_the_header_before_decoding():
    """A 12000 x 12000 header over 96 px of data is refused by its size, not its data."""
    for name in ("12000 x 12000 JPEG", "12000 x 12000 PNG"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="12000x12000 = 144000000 pix"):
            _decode(CASES[name].data)
    with pytest.raises(tf.errors.InvalidArgumentError, match="96 = 11520 pixels, above"):
        decode.decode_photograph(tf.constant(CASES["PNG"].data), MIN_IMAGE_SIDE, 11519)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation):
    """All eight EXIF orientations turn the stored pixels as ImageOps.exif_transpose does."""
    rgb = bad_inputs.photograph()
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    data = buffer.getvalue()
    assert int(decode.exif_orientation(tf.constant(data))) == orientation
    stored = tf.io.decode_jpeg(data).numpy()
    tagged = Image.fromarray(stored)
    tagged.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(tagged))
    np.testing.assert_array_equal(decode.orient(tf.constant(stored), orientation), expected)


def test_exif_orientation_defaults_to_upright():
    """No EXIF, big-endian EXIF without the tag, or a PNG: orientation 1."""
    assert int(decode.exif_orientation(tf.constant(CASES["JPEG"].data))) == 1
    assert int(decode.exif_orientation(tf.constant(CASES["PNG"].data))) == 1
    exif = Image.Exif()
    exif[0x010F] = "camera"  # Make, no orientation
    buffer = io.BytesIO()
    Image.fromarray(bad_inputs.photograph()).save(buffer, "JPEG", exif=exif.tobytes())
    assert int(decode.exif_orientation(tf.constant(buffer.getvalue()))) == 1


def test_header_size_reads_jpeg_png_gif_and_bmp():
    """Height and width from the header of each format, and unknown formats flagged."""
    rgb = bad_inputs.photograph()
    for fmt in ("JPEG", "PNG", "GIF", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, fmt)
        known, height, width = decode.header_size(tf.constant(buffer.getvalue()))
        assert bool(known) and (int(height), int(width)) == rgb.shape[:2], fmt
    assert not bool(decode.header_size(tf.constant(b"RIFF....WEBP"))[0])


def test_image_io_matrix(tmp_path):
    """The commands' loader: each rejected case raises ImageError with its reason."""
    for name in bad_inputs.rejected():
        case = CASES[name]
        if case.reason == "no field of view":
            continue  # decided after the crop, by the commands (see the predict matrix)
        path = tmp_path / case.file_name
        path.write_bytes(case.data)
        with pytest.raises(ImageError, match=case.reason):
            load_rgb(str(path))
