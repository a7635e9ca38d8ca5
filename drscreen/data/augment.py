"""Team o_O's data augmentation as deterministic TensorFlow ops.

Random zoom (with stretch), rotation, translation, horizontal flip and PCA colour noise, drawn
with stateless RNG (plus, not o_O's, quarter turns: with the flip, the eight lossless symmetries
of the square, `DIHEDRAL`) from a per-element seed, so the same seed always gives the same image.
Geometric transforms use `tf.raw_ops.ImageProjectiveTransformV3`, the TensorFlow built-in that
Keras' random-affine layers use and that replaces tensorflow-addons' `rotate`/`transform`.
Works eagerly and inside `tf.data.Dataset.map`. Must not read files or know about labels.
"""

import dataclasses
import math

import tensorflow as tf

from drscreen.layers.normalization import OO_STD

# o_O's PCA of the z-scored RGB colours of Kaggle DR 2015 (columns are eigenvectors).
PCA_EIGENVECTORS = (
    (-0.5654, 0.7198, 0.4024),
    (-0.5989, -0.0230, -0.8004),
    (-0.5669, -0.6936, 0.4442),
)
PCA_EIGENVALUES = (1.6551, 0.4845, 0.1565)
OO_MAX_TRANSLATION = 40.0 / 512.0  # o_O: +-40 px on 512 px images


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which parts of the o_O augmentation run, and their ranges.

    Attributes
    ----------
    zoom:
        Random zoom, log-uniform in `zoom_range`.
    zoom_range:
        Smallest and largest zoom factor.
    stretch:
        Draw the horizontal and vertical zoom independently (o_O's ``allow_stretch``).
    rotation:
        Uniform rotation in [0, 360) degrees about the image centre.
    translation:
        Uniform shift of up to `max_translation` of the image side along each axis.
    max_translation:
        Largest shift as a fraction of the side (o_O: 40 px of 512).
    flip:
        Horizontal flip with probability 1/2 (with rotation this covers every mirror image).
    color_noise:
        PCA colour noise (Krizhevsky et al. 2012) on the z-scored colour scale.
    color_sigma:
        Standard deviation of the PCA coefficients (o_O: 0.5 for net A, 0.25 for net B).
    quarter_turns:
        Rotate by 0, 90, 180 or 270 degrees (uniformly), exactly: no resampling, so 1-px
        lesions stay sharp (not in o_O's recipe).
    """

    zoom: bool = True
    zoom_range: tuple[float, float] = (1.0 / 1.15, 1.15)
    stretch: bool = True
    rotation: bool = True
    translation: bool = True
    max_translation: float = OO_MAX_TRANSLATION
    flip: bool = True
    color_noise: bool = True
    color_sigma: float = 0.5
    quarter_turns: bool = False

    def __post_init__(self):
        low, high = self.zoom_range
        if not 0.0 < low <= high:
            raise ValueError(f"zoom_range {self.zoom_range} must satisfy 0 < low <= high")
        if not 0.0 <= self.max_translation < 1.0:
            raise ValueError(f"max_translation {self.max_translation} must be in [0, 1)")
        if self.color_sigma < 0.0:
            raise ValueError(f"color_sigma {self.color_sigma} must be >= 0")

    @property
    def geometric(self) -> bool:
        """Whether any resampling transform is enabled (quarter turns need none)."""
        return self.zoom or self.rotation or self.translation or self.flip


DIHEDRAL = AugmentConfig(
    zoom=False,
    rotation=False,
    translation=False,
    flip=True,
    color_noise=False,
    quarter_turns=True,
)
"""Flips and quarter turns only: the 8 symmetries of the square, every pixel kept exactly (a
flip about the centre samples pixel centres, so its bilinear resampling is exact)."""


def transform_matrix(
    zoom_x: tf.Tensor | float,
    zoom_y: tf.Tensor | float,
    angle: tf.Tensor | float,
    shift_x: tf.Tensor | float,
    shift_y: tf.Tensor | float,
    flip: tf.Tensor | bool,
    height: tf.Tensor | int,
    width: tf.Tensor | int,
) -> tf.Tensor:
    """The projective transform of `ImageProjectiveTransformV3` for one augmentation.

    The augmentation maps an input point p (x = column, y = row, pixel centres at integers)
    to C + t + R(angle)·F·Z·(p − C), with C the image centre, Z = diag(zoom_x, zoom_y),
    F = diag(−1, 1) when flipping and t = (shift_x, shift_y). The op wants the inverse map
    (output pixel to input point): p = C + M·(q − C − t) with M = Z⁻¹·F·R(−angle).

    Returns
    -------
    tf.Tensor
        float32 (8,): [a0, a1, a2, b0, b1, b2, 0, 0].
    """
    zoom_x, zoom_y, angle, shift_x, shift_y = (
        tf.cast(v, tf.float32) for v in (zoom_x, zoom_y, angle, shift_x, shift_y)
    )
    mirror = tf.where(tf.cast(flip, tf.bool), -1.0, 1.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1 = mirror * cos / zoom_x, mirror * sin / zoom_x
    b0, b1 = -sin / zoom_y, cos / zoom_y
    centre_x = (tf.cast(width, tf.float32) - 1.0) / 2.0
    centre_y = (tf.cast(height, tf.float32) - 1.0) / 2.0
    source_x, source_y = centre_x + shift_x, centre_y + shift_y
    a2 = centre_x - a0 * source_x - a1 * source_y
    b2 = centre_y - b0 * source_x - b1 * source_y
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def apply_transform(image: tf.Tensor, transform: tf.Tensor) -> tf.Tensor:
    """Resamples an (H, W, C) float32 image with `transform`, bilinear, black outside."""
    image = tf.convert_to_tensor(image, tf.float32)
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.ensure_shape(transformed[0], image.shape)


def pca_color_shift(coefficients: tf.Tensor) -> tf.Tensor:
    """Per-channel shift in [0, 255] units for PCA coefficients drawn from N(0, sigma²).

    o_O adds U·(coefficients · eigenvalues) to z-scored images; multiplying by the o_O
    standard deviation gives the same shift on the 0-255 scale.
    """
    eigen = (
        tf.constant(PCA_EIGENVECTORS)
        @ (tf.cast(coefficients, tf.float32) * tf.constant(PCA_EIGENVALUES))[:, tf.newaxis]
    )
    return eigen[:, 0] * tf.constant(OO_STD)


def sample_parameters(
    seed: tf.Tensor, config: AugmentConfig, height: tf.Tensor, width: tf.Tensor
) -> dict[str, tf.Tensor]:
    """Draws the augmentation parameters for one image from a stateless seed (2,) int."""
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    log_low, log_high = (math.log(z) for z in config.zoom_range)
    zoom_x = tf.exp(tf.random.stateless_uniform([], seeds[0], log_low, log_high))
    zoom_y = tf.exp(tf.random.stateless_uniform([], seeds[1], log_low, log_high))
    shift = tf.random.stateless_uniform(
        [2], seeds[3], -config.max_translation, config.max_translation
    ) * tf.cast(tf.stack([width, height]), tf.float32)
    identity_zoom = tf.constant(1.0)
    return {
        "zoom_x": zoom_x if config.zoom else identity_zoom,
        "zoom_y": (zoom_y if config.stretch else zoom_x) if config.zoom else identity_zoom,
        "angle": (
            tf.random.stateless_uniform([], seeds[2], 0.0, 2.0 * math.pi)
            if config.rotation
            else tf.constant(0.0)
        ),
        "shift_x": shift[0] if config.translation else tf.constant(0.0),
        "shift_y": shift[1] if config.translation else tf.constant(0.0),
        "flip": (
            tf.random.stateless_uniform([], seeds[4]) < 0.5 if config.flip else tf.constant(False)
        ),
        "color": (
            tf.random.stateless_normal([3], seeds[5], stddev=config.color_sigma)
            if config.color_noise
            else tf.zeros([3])
        ),
    }


def augment_image(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Applies the o_O augmentation to one image.

    Parameters
    ----------
    image:
        float32 (H, W, 3) RGB in [0, 255].
    seed:
        int32/int64 (2,) stateless seed; equal seeds give equal outputs.
    config:
        Which transforms to apply.

    Returns
    -------
    tf.Tensor
        float32 (H, W, 3) in [0, 255]; black where the transform samples outside the image.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    params = sample_parameters(seed, config, height, width)
    if config.geometric:
        transform = transform_matrix(
            params["zoom_x"],
            params["zoom_y"],
            params["angle"],
            params["shift_x"],
            params["shift_y"],
            params["flip"],
            height,
            width,
        )
        image = apply_transform(image, transform)
    if config.quarter_turns:
        turn_seed = tf.random.experimental.stateless_fold_in(seed, 7)
        turns = tf.random.stateless_uniform([], turn_seed, 0, 4, dtype=tf.int32)
        image = tf.image.rot90(image, turns)
    if config.color_noise:
        image = tf.clip_by_value(image + pca_color_shift(params["color"]), 0.0, 255.0)
    return image
