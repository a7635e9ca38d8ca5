"""Tests of image loading: RGB order and a clear error for each kind of bad file."""

import cv2
import numpy as np
import pytest

from drscreen.data import image_io
from drscreen.data.image_io import ImageError, load_mask, load_mask_image, load_rgb


def _colour_image() -> np.ndarray:
    image = np.zeros((40, 48, 3), np.uint8)
    image[..., 0] = 200  # red
    image[10:20, 10:20, 2] = 90
    return image


def _write(path, image: np.ndarray) -> str:
    stored = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), stored)
    return str(path)


@pytest.mark.parametrize("suffix", [".png", ".jpeg", ".tif"])
def test_load_rgb_returns_rgb_uint8(tmp_path, suffix):
    """The red channel comes first, whatever the format."""
    image = _colour_image()
    loaded = load_rgb(_write(tmp_path / f"a{suffix}", image))
    assert loaded.dtype == np.uint8 and loaded.shape == (40, 48, 3)
    assert np.abs(loaded.astype(float) - image).mean() < 2.0  # JPEG blurs colour edges
    np.testing.assert_allclose(loaded[0, 0], [200, 0, 0], atol=4)


def _bad_files(tmp_path) -> dict[str, tuple[str, str]]:
    good = _write(tmp_path / "good.jpeg", _colour_image())
    good_png = _write(tmp_path / "good.png", _colour_image())
    data, png = open(good, "rb").read(), open(good_png, "rb").read()
    files = {
        "missing": (str(tmp_path / "nope.jpeg"), "file not found"),
        "empty": (str(tmp_path / "empty.jpeg"), "empty file"),
        "not_image": (str(tmp_path / "text.jpeg"), "not a decodable image"),
        "truncated_jpeg": (str(tmp_path / "cut.jpeg"), "truncated"),
        "truncated_png": (str(tmp_path / "cut.png"), "truncated"),
        "grayscale": (_write(tmp_path / "gray.png", _colour_image()[..., 0]), "grayscale"),
        "too_small": (_write(tmp_path / "small.png", _colour_image()[:8, :8]), "too small"),
    }
    (tmp_path / "empty.jpeg").write_bytes(b"")
    (tmp_path / "text.jpeg").write_bytes(b"this is not an image at all")
    (tmp_path / "cut.jpeg").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 20])
    return files


@pytest.mark.parametrize(
    "kind",
    ["missing", "empty", "not_image", "truncated_jpeg", "truncated_png", "grayscale", "too_small"],
)
def test_load_rgb_names_path_and_reason(tmp_path, kind):
    """Each bad file raises ImageError (a ValueError) naming the path and the reason."""
    path, reason = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageError, match=reason) as error:
        load_rgb(path)
    assert error.value.path == path and str(error.value).startswith(path)
    assert isinstance(error.value, ValueError)


def test_load_mask(tmp_path):
    """Any non-zero pixel of a grey or colour mask is lesion."""
    mask = np.zeros((6, 7), np.uint8)
    mask[2, 3] = 255
    mask[4, 1] = 1
    expected = mask > 0
    np.testing.assert_array_equal(load_mask(_write(tmp_path / "m.png", mask)), expected)
    colour = np.zeros((6, 7, 3), np.uint8)
    colour[..., 0] = mask  # red only, as IDRiD
    np.testing.assert_array_equal(load_mask(_write(tmp_path / "c.png", colour)), expected)
    assert load_mask_image(str(tmp_path / "m.png")).dtype == np.uint8
    with pytest.raises(ImageError, match="file not found"):
        load_mask(str(tmp_path / "none.png"))


def test_is_grayscale_is_the_mean_channel_spread_against_the_tolerance():
    """The decision is numpy's ptp over the channels, averaged, against GRAYSCALE_TOLERANCE:
    random colour, exactly grey, a tint of 1 level on half the rows (mean spread 0.5), and a
    blue shift of 5 levels everywhere."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.ptp(rgb, axis=-1).mean() > image_io.GRAYSCALE_TOLERANCE
    assert not image_io.is_grayscale(rgb)
    grey = np.repeat(rng.integers(1, 250, (40, 50, 1), dtype=np.uint8), 3, axis=-1)
    assert image_io.is_grayscale(grey)
    tinted = grey.copy()
    tinted[:20, :, 0] += 1
    assert np.ptp(tinted, axis=-1).mean() == 0.5 and image_io.is_grayscale(tinted)
    coloured = grey.copy()
    coloured[..., 2] += 5
    assert np.ptp(coloured, axis=-1).mean() == 5 and not image_io.is_grayscale(coloured)
