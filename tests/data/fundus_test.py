"""Tests of fundus pre-processing: eagerly, in tf.data.map and in a shape-agnostic tf.function."""

import contextlib

import cv2
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.data import fundus

ORANGE = (200, 110, 40)


def draw_fundus(
    height: int,
    width: int,
    centre: tuple[int, int],
    radius: int,
    colour: tuple[int, int, int] = ORANGE,
    seed: int = 0,
    noise: float = 0.0,
) -> np.ndarray:
    """An orange disc on black (centre is (x, y)), with a darker vessel-like line and noise."""
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, centre, radius, colour, -1)
    dark = tuple(int(c * 0.6) for c in colour)
    cv2.line(
        image, (centre[0] - radius // 2, centre[1]), (centre[0] + radius // 2, centre[1]), dark, 2
    )
    if noise:
        rng = np.random.default_rng(seed)
        image = np.clip(image + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)
    return image


def disc_mask(height: int, width: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def _in_tf_data(fn, image: np.ndarray):
    dataset = tf.data.Dataset.from_tensors(image).map(fn)
    return next(iter(dataset))


def _in_unknown_shape_function(fn, image: np.ndarray):
    spec = tf.TensorSpec([None, None, 3], tf.as_dtype(image.dtype))
    return tf.function(fn, input_signature=[spec])(image)


RUNNERS = {
    "eager": lambda fn, image: fn(image),
    "tf_data": _in_tf_data,
    "tf_function": _in_unknown_shape_function,
}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    "colour,noise", [(ORANGE, 0.0), ((26, 12, 4), 4.0)], ids=["bright", "dark_noisy"]
)
def test_field_of_view_mask_recovers_disc(runner, colour, noise):
    """The mask matches the drawn disc, also on a dark, noisy photograph with a notch."""
    image = draw_fundus(56, 72, (38, 26), 24, colour, noise=noise)
    cv2.rectangle(image, (36, 0), (40, 5), (0, 0, 0), -1)  # notch at the rim
    expected = disc_mask(56, 72, (38, 26), 24)
    expected[0:6, 36:41] = False
    mask = RUNNERS[runner](fundus.field_of_view_mask, image).numpy()
    assert mask.shape == (56, 72) and mask.dtype == np.float32
    assert np.mean(mask.astype(bool) != expected) < 0.02


def test_field_of_view_mask_of_batch_equals_each_image():
    """A batch gives the stacked single-image masks."""
    images = np.stack(
        [draw_fundus(32, 40, (20, 16), 14), draw_fundus(32, 40, (18, 15), 12, (60, 30, 10))]
    )
    batch = fundus.field_of_view_mask(images).numpy()
    singles = [fundus.field_of_view_mask(image).numpy() for image in images]
    np.testing.assert_array_equal(batch, np.stack(singles))


@pytest.mark.parametrize(
    "height,width,centre,radius",
    [
        (80, 128, (60, 30), 36),  # off-centre, cut by the top edge only
        (64, 96, (48, 32), 40),  # Kaggle-like: cut at top and bottom
        (48, 64, (30, 24), 18),  # inside the frame, off-centre
    ],
    ids=["cut_top", "cut_top_bottom", "inside"],
)
def test_field_of_view_box_is_square_around_disc(height, width, centre, radius):
    """The box is the disc's bounding square, reaching outside the frame where it is cut."""
    image = draw_fundus(height, width, centre, radius)
    box = fundus.field_of_view_box(fundus.field_of_view_mask(image)).numpy()
    diameter = 2 * radius + 1
    expected = [centre[1] - radius, centre[0] - radius, diameter]
    np.testing.assert_allclose(box, expected, atol=2)


def test_field_of_view_box_falls_back_to_centre_square():
    """A black photograph has no field of view: the centre square is used."""
    box = fundus.field_of_view_box(fundus.field_of_view_mask(np.zeros((40, 60, 3), np.uint8)))
    np.testing.assert_array_equal(box.numpy(), [0, 10, 40])


@pytest.mark.parametrize("runner", RUNNERS)
def test_crop_recovers_centred_disc(runner):
    """Cropping a clipped, off-centre disc centres it in the square, black where it was cut."""
    image = draw_fundus(64, 96, (44, 30), 38, noise=3.0)
    cropped, mask = RUNNERS[runner](lambda x: fundus.crop_to_field_of_view(x, 32), image)
    assert cropped.shape == (32, 32, 3) and mask.shape == (32, 32)
    assert cropped.dtype == tf.float32 and mask.dtype == tf.float32
    # The disc (pixel-area coordinates, centre (44.5, 30.5), radius 38.5) inside the frame,
    # seen through its bounding square (top -8, left 6, side 77) sampled at 32 x 32.
    grid = (np.arange(32) + 0.5) * 77 / 32
    y, x = np.meshgrid(grid - 8.0, grid + 6.0, indexing="ij")
    expected = ((x - 44.5) ** 2 + (y - 30.5) ** 2 <= 38.5**2) & (y >= 0) & (y < 64)
    got = mask.numpy().astype(bool)
    iou = (got & expected).sum() / (got | expected).sum()
    assert iou > 0.93
    inside = cropped.numpy()[expected & got]
    np.testing.assert_allclose(np.median(inside, axis=0), ORANGE, atol=6)
    assert 0.0 <= cropped.numpy().min() and cropped.numpy().max() <= 255.0


def test_crop_runs_identically_in_every_context():
    """Eager, tf.data and unknown-shape tf.function crops agree."""
    image = draw_fundus(50, 70, (33, 25), 27, noise=3.0)
    results = [
        run(lambda x: fundus.crop_to_field_of_view(x, 24), image) for run in RUNNERS.values()
    ]
    for cropped, mask in results[1:]:
        np.testing.assert_allclose(cropped.numpy(), results[0][0].numpy(), atol=1e-3)
        np.testing.assert_array_equal(mask.numpy(), results[0][1].numpy())


def test_crop_keeps_square_tight_image():
    """A photograph already square and tight around its disc passes through unchanged."""
    image = draw_fundus(48, 48, (24, 24), 24)
    cropped, _ = fundus.crop_to_field_of_view(image, 48)
    assert np.abs(cropped.numpy() - image).max() <= 1.0


def test_crop_rejects_wrong_shape():
    """A single-channel input is named and refused."""
    with pytest.raises(ValueError, match="crop_to_field_of_view.*shape"):
        fundus.crop_to_field_of_view(np.zeros((8, 8, 1), np.uint8), 8)


def test_decode_and_preprocess_matches_array_crop():
    """Decoding PNG bytes then cropping equals cropping the array (PNG is lossless)."""
    image = draw_fundus(40, 52, (26, 20), 19)
    png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
    decoded, mask = _in_tf_data(lambda b: fundus.decode_and_preprocess(b, 16), png)
    expected, expected_mask = fundus.crop_to_field_of_view(image, 16)
    np.testing.assert_allclose(decoded.numpy(), expected.numpy(), atol=1e-4)
    np.testing.assert_array_equal(mask.numpy(), expected_mask.numpy())


def _reference_mask(image: np.ndarray) -> np.ndarray:
    """The documented rule with OpenCV morphology (borders ignored, as 'SAME' pooling)."""
    intensity = image.max(axis=-1).astype(np.float64)
    k = max(1, min(image.shape[:2]) // 16)
    corners = [intensity[:k, :k], intensity[:k, -k:], intensity[-k:, :k], intensity[-k:, -k:]]
    level = min(min(c.mean() for c in corners), fundus.MAX_BACKGROUND)
    mask = (intensity > level + fundus.FOV_THRESHOLD).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    mask = cv2.dilate(cv2.erode(mask, kernel), kernel)
    return cv2.erode(cv2.dilate(mask, kernel), kernel).astype(np.float32)


@pytest.mark.parametrize("portable", [False, True], ids=["bool", "portable"])
@pytest.mark.parametrize("runner", RUNNERS)
def test_field_of_view_mask_morphology_matches_opencv(runner, portable):
    """Specks outside, holes inside and a disc cut by the frame: opening then closing as
    OpenCV computes it, for uint8 and float input, with bool morphology (in-process) and
    with the float 0/1 morphology of exported graphs (`drscreen.layers.portable`)."""
    image = draw_fundus(40, 56, (30, 18), 22, noise=2.0)
    rng = np.random.default_rng(3)
    for y, x in rng.integers(0, 40, (12, 2)):
        image[y, x] = 255 if image[y, x].max() < 40 else 0  # specks and holes
    image[:, 0] = 200  # a bright column on the frame's edge
    image[39, 55] = 255  # a speck in the corner: morphology at two borders at once
    expected = _reference_mask(image)
    build = layers.portable if portable else contextlib.nullcontext
    for typed in (image, image.astype(np.float32)):
        with build():
            mask = RUNNERS[runner](fundus.field_of_view_mask, typed)
        np.testing.assert_array_equal(mask.numpy(), expected)


def test_crop_in_a_function_of_unknown_rank():
    """A tf.function whose input has no static shape crops RGB images (static output shape)
    and names a grayscale one when it runs."""
    crop = tf.function(
        lambda x: fundus.crop_to_field_of_view(x, 16),
        input_signature=[tf.TensorSpec(None, tf.uint8)],
    )
    image = draw_fundus(40, 52, (26, 20), 19)
    cropped, mask = crop(image)
    expected, expected_mask = fundus.crop_to_field_of_view(image, 16)
    np.testing.assert_array_equal(cropped.numpy(), expected.numpy())
    np.testing.assert_array_equal(mask.numpy(), expected_mask.numpy())
    assert crop.get_concrete_function().structured_outputs[0].shape == (16, 16, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected one image"):
        crop(np.zeros((8, 8, 1), np.uint8))


@pytest.mark.parametrize("encoding", [".png", ".jpg", "gray.jpg", "rgba.png"])
def test_decode_and_preprocess_any_file_in_tf_data(encoding):
    """PNG, JPEG, grayscale JPEG and RGBA PNG bytes all decode to three channels in
    tf.data and crop to (S, S, 3)."""
    image = cv2.cvtColor(draw_fundus(40, 52, (26, 20), 19), cv2.COLOR_RGB2BGR)
    if encoding.startswith("gray"):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif encoding.startswith("rgba"):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    encoded = cv2.imencode(encoding[-4:], image)[1].tobytes()
    cropped, mask = _in_tf_data(lambda b: fundus.decode_and_preprocess(b, 16), encoded)
    assert cropped.shape == (16, 16, 3) and mask.shape == (16, 16)
    assert mask.numpy()[8, 8] == 1.0 and mask.numpy()[0, 0] == 0.0
