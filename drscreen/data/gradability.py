"""Measured image quality of a cropped fundus photograph: sharpness, exposure, field of view.

`gradability_features` turns the model's input (the square field-of-view crop, float32 RGB in
[0, 255], and its field-of-view mask) into `FEATURE_NAMES`: numbers a grader would check
before reading a photograph. `drscreen.models.quality.QualityGate` combines them into the
probability that the photograph is gradable.

The crop is first brought to `ANALYSIS_SIZE` px (box filter by the integer factor, then
bilinear), so the figures mean the same thing for every model input size; a model smaller
than that is enlarged, which softens its detail figures. Only TensorFlow ops that TFLite
runs as built-ins and ONNX converts (convolutions with fixed kernels, pooling, bilinear
resizing, reductions, arithmetic, logistic and log), so the figures are computed inside every
exported format. Eager, in tf.data and in a `tf.function`. Must not decide what is gradable.
"""

import math

import numpy as np
import tensorflow as tf

ANALYSIS_SIZE = 128
REGION_SIZE = 32
"""Side of the grid the regional figures (``outside_disc``, ``rim_to_centre``,
``darkest_side``) are measured on: the field and brightness are box-averaged to it, so that
the exported graphs carry 32 x 32 region masks rather than 128 x 128 ones."""
FEATURE_NAMES = (
    "field_coverage",
    "outside_disc",
    "brightness",
    "dark_fraction",
    "saturated_fraction",
    "fine_detail",
    "vessel_detail",
    "detail_direction",
    "contrast",
    "saturation",
    "redness",
    "green_to_red",
    "rim_to_centre",
    "darkest_side",
)
"""What each feature measures (all on the crop at `ANALYSIS_SIZE` px, "inside" meaning the
field of view eroded by 8 px):

- ``field_coverage``: field-of-view area / the crop's inscribed disc (1: a whole disc; less:
  cut by the frame; more: no disc, e.g. a photograph without black borders);
- ``outside_disc``: share of the crop's corners (outside the inscribed disc) in the field;
- ``brightness``: mean brightest channel inside / 255;
- ``dark_fraction``: share inside darker than a third of the mean (shadows, small pupil);
- ``saturated_fraction``: share inside at the top of the range (over-exposure);
- ``fine_detail``, ``vessel_detail``: log mean |Laplacian of Gaussian| of the green channel
  at 1 and 2 px, relative to its mean (vessel and lesion edges; blur removes them);
- ``detail_direction``: weakest over strongest of four directional derivatives (a motion
  streak leaves edges along one direction only);
- ``contrast``: green standard deviation / mean inside (haze flattens it);
- ``saturation``: mean (max - min) / max channel inside (haze and grey images lack colour);
- ``redness``: (mean red - mean blue) / mean brightness (a retina is red);
- ``green_to_red``: mean green / mean red (low on a retina, about 1 on grey scenes);
- ``rim_to_centre``: mean brightness in the ring 0.65-0.9 of the radius / within 0.4;
- ``darkest_side``: the darkest of the ring's four sides / the centre (an eyelid's shadow).
"""

_EPSILON = 1e-3
_EROSION = 8


def _gaussian_kernel(sigma: float) -> np.ndarray:
    reach = int(math.ceil(3 * sigma))
    x = np.arange(-reach, reach + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _separable_blur(image: tf.Tensor, sigma: float) -> tf.Tensor:
    """(N, H, W, 1) blurred by a Gaussian of ``sigma`` px, zero outside the frame."""
    kernel = _gaussian_kernel(sigma).astype(np.float32)
    rows = tf.constant(kernel[:, None, None, None])
    cols = tf.constant(kernel[None, :, None, None])
    blurred = tf.nn.conv2d(image, rows, 1, "SAME")
    return tf.nn.conv2d(blurred, cols, 1, "SAME")


def _filter(image: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    return tf.nn.conv2d(image, tf.constant(kernel[:, :, None, None], tf.float32), 1, "SAME")


_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
_DIRECTIONS = (
    np.array([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], np.float32) / 2,
    np.array([[0, -1, 0], [0, 0, 0], [0, 1, 0]], np.float32) / 2,
    np.array([[-1, 0, 0], [0, 0, 0], [0, 0, 1]], np.float32) / (2 * math.sqrt(2)),
    np.array([[0, 0, -1], [0, 0, 0], [1, 0, 0]], np.float32) / (2 * math.sqrt(2)),
)


def _to_analysis_size(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Images (N, A, A, 3) and masks (N, A, A, 1) at `ANALYSIS_SIZE`."""
    stacked = tf.concat([images, masks[..., tf.newaxis]], axis=-1)
    size = int(stacked.shape[1])
    factor = size // ANALYSIS_SIZE
    if factor > 1:
        stacked = tf.nn.avg_pool2d(stacked, factor, factor, "VALID")
    if int(stacked.shape[1]) != ANALYSIS_SIZE:
        stacked = tf.image.resize(stacked, [ANALYSIS_SIZE, ANALYSIS_SIZE], method="bilinear")
    return stacked[..., :3], tf.cast(stacked[..., 3:] > 0.5, tf.float32)


def _radius_masks() -> dict[str, np.ndarray]:
    """Fixed regions of the `REGION_SIZE` grid, relative to the square's inscribed disc."""
    centre = (REGION_SIZE - 1) / 2
    ys, xs = np.mgrid[:REGION_SIZE, :REGION_SIZE].astype(np.float64)
    dy, dx = ys - centre, xs - centre
    r = np.hypot(dx, dy) / (REGION_SIZE / 2)
    ring = (r >= 0.65) & (r <= 0.9)
    regions = {
        "disc": r <= 1.0,
        "centre": r <= 0.4,
        "ring": ring,
        "top": ring & (dy < -np.abs(dx)),
        "bottom": ring & (dy > np.abs(dx)),
        "left": ring & (dx < -np.abs(dy)),
        "right": ring & (dx > np.abs(dy)),
    }
    return {name: region.astype(np.float32)[None, :, :, None] for name, region in regions.items()}


def _mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted mean over (H, W, C) per image: (N,)."""
    total = tf.reduce_sum(values * weights, axis=[1, 2, 3])
    return total / (tf.reduce_sum(weights, axis=[1, 2, 3]) + _EPSILON)


def _ratio(light: tf.Tensor, field: tf.Tensor, region: np.ndarray) -> tf.Tensor:
    """(N,) sum of ``light`` over ``region`` / the field's area there (box-averaged grids)."""
    total = tf.reduce_sum(light * region, axis=[1, 2, 3])
    return total / (tf.reduce_sum(field * region, axis=[1, 2, 3]) + _EPSILON)


def gradability_features(images: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """`FEATURE_NAMES` of a batch of field-of-view crops.

    Parameters
    ----------
    images:
        float32 (N, S, S, 3) RGB in [0, 255], S static (the model's input).
    masks:
        float32 (N, S, S) field-of-view masks of 0/1.

    Returns
    -------
    tf.Tensor
        float32 (N, len(FEATURE_NAMES)), in that order.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    masks = tf.convert_to_tensor(masks, tf.float32)
    if images.shape.rank != 4 or images.shape[1] is None or images.shape[1] != images.shape[2]:
        raise ValueError(f"gradability_features: expected (N, S, S, 3), got {images.shape}")
    images, fov = _to_analysis_size(images, masks)
    regions = _radius_masks()
    # Eroded beyond the reach of the widest filter (Gaussian 3 sigma + Laplacian): no
    # figure sees the field's edge, nor the frame's (outside the frame is outside the field).
    border = [[0, 0], [_EROSION, _EROSION], [_EROSION, _EROSION], [0, 0]]
    inside = -tf.nn.max_pool2d(-tf.pad(fov, border), 2 * _EROSION + 1, 1, "VALID")
    red, green, blue = images[..., 0:1], images[..., 1:2], images[..., 2:3]
    brightest = tf.maximum(tf.maximum(red, green), blue)
    darkest = tf.minimum(tf.minimum(red, green), blue)
    brightness = _mean(brightest, inside)
    mean_green = _mean(green, inside)
    mean_red = _mean(red, inside)

    factor = ANALYSIS_SIZE // REGION_SIZE
    coarse_fov = tf.nn.avg_pool2d(fov, factor, factor, "VALID")
    coarse_light = tf.nn.avg_pool2d(brightest * fov, factor, factor, "VALID")
    outside = 1.0 - regions["disc"]
    field_coverage = tf.reduce_mean(fov, axis=[1, 2, 3]) / (math.pi / 4)
    outside_disc = tf.reduce_sum(coarse_fov * outside, axis=[1, 2, 3]) / float(outside.sum())
    dark_level = brightness[:, None, None, None] / 3.0
    dark_fraction = _mean(tf.sigmoid((dark_level - brightest) / 3.0), inside)
    saturated_fraction = _mean(tf.sigmoid((brightest - 245.0) / 3.0), inside)

    relative = green / (mean_green[:, None, None, None] + 10.0)
    fine = _separable_blur(relative, 1.0)
    vessel = _separable_blur(relative, 2.0)
    fine_detail = tf.math.log(_mean(tf.abs(_filter(fine, _LAPLACIAN)), inside) + _EPSILON)
    vessel_detail = tf.math.log(_mean(tf.abs(_filter(vessel, _LAPLACIAN)), inside) + _EPSILON)
    directions = [_mean(tf.abs(_filter(fine, kernel)), inside) for kernel in _DIRECTIONS]
    strongest = tf.reduce_max(tf.stack(directions, axis=1), axis=1)
    weakest = tf.reduce_min(tf.stack(directions, axis=1), axis=1)
    detail_direction = weakest / (strongest + _EPSILON)

    spread = _mean(tf.square(green - mean_green[:, None, None, None]), inside)
    contrast = tf.sqrt(spread + _EPSILON) / (mean_green + 1.0)
    saturation = _mean((brightest - darkest) / (brightest + 1.0), inside)
    redness = (mean_red - _mean(blue, inside)) / (brightness + 1.0)
    green_to_red = mean_green / (mean_red + 1.0)

    def regional(region: str) -> tf.Tensor:
        """Mean brightest channel over the field within a region."""
        return _ratio(coarse_light, coarse_fov, regions[region])

    centre = regional("centre") + 1.0
    rim_to_centre = regional("ring") / centre
    sides = [regional(side) for side in ("top", "bottom", "left", "right")]
    darkest_side = tf.reduce_min(tf.stack(sides, axis=1), axis=1) / centre
    features = [
        field_coverage,
        outside_disc,
        brightness / 255.0,
        dark_fraction,
        saturated_fraction,
        fine_detail,
        vessel_detail,
        detail_direction,
        contrast,
        saturation,
        redness,
        green_to_red,
        rim_to_centre,
        darkest_side,
    ]
    return tf.stack(features, axis=1)
