"""The exported functions: fundus images in, referable-DR score, grade, heatmap, lesions out.

Owns the three endpoints every export format shares (the contract of `drscreen serve`):

- ``serving_default``: tf.string ``images`` (N,) of encoded JPEG/PNG/GIF/BMP -> decode with
  the checks of the commands (`drscreen.data.decode`: pixel limit before decoding, EXIF
  orientation, colour, size, field of view), crop to the field of view and resize (the
  training code) -> ``score``, ``grade``, ``heatmap``, ``quality``, ``lesions``;
- ``predict_float``: float32 ``images`` (N, S, S, 3) in [0, 255] -> the same outputs; no
  in-graph decode, so it converts to TFLite and ONNX;
- ``predict_score``: float32 ``images`` -> ``score``, ``grade`` and ``quality`` (one forward
  pass).

``score`` is the referable-DR probability (`drscreen.models.referable_probability` of the
grade), ``heatmap`` the field-of-view-masked heatmap of `drscreen.heatmaps.compute`,
average-pooled to ``heatmap_size`` when that is smaller than the input, and ``quality`` the
gradability gate's probability that the photograph is gradable (`drscreen.models.quality`,
from the `drscreen.data.gradability` features of the same crop and mask; ungradable at or
below the gate's threshold, which the export description states). ``lesions`` (N, S, S),
at the input size, is the map that points at lesions: the run's lesion student's
field-of-view-masked probability (`drscreen.models.lesion_map`) when it has one
(``lesions.keras``), otherwise the heatmap itself (before any pooling); the export
description's ``lesions`` section says which. Must not write files.
"""

import dataclasses

import keras
import tensorflow as tf

from drscreen.data.decode import decode_and_crop
from drscreen.data.fundus import field_of_view_mask
from drscreen.data.gradability import gradability_features
from drscreen.data.image_io import DEFAULT_MAX_PIXELS, MIN_IMAGE_SIDE
from drscreen.heatmaps import METHODS, compute
from drscreen.layers import portable
from drscreen.models.calibration import Calibration
from drscreen.models.lesion_map import LESIONS, check_lesion_model, lesion_map
from drscreen.models.quality import QualityGate, default_quality_gate
from drscreen.models.runs import model_input_size

INPUT_NAME = "images"
SERVING_DEFAULT = "serving_default"
PREDICT_FLOAT = "predict_float"
PREDICT_SCORE = "predict_score"
SIGNATURES = (SERVING_DEFAULT, PREDICT_FLOAT, PREDICT_SCORE)
HEATMAP_OUTPUTS = ("score", "grade", "heatmap", "quality", LESIONS)
SCORE_OUTPUTS = ("score", "grade", "quality")


@dataclasses.dataclass(frozen=True)
class SignatureConfig:
    """What the exported functions compute besides the model itself.

    Attributes
    ----------
    heatmap_method:
        A method of `drscreen.heatmaps.METHODS` (default: the paper's sensitivity map).
    heatmap_size:
        Side of the returned heatmap in pixels; 0 returns it at the input size. A smaller
        size must divide the input size: the heatmap is average-pooled (area) to it.
    calibration:
        Grade -> referable probability (training fits it on validation: `calibration.json`).
    max_image_pixels:
        ``serving_default`` refuses photographs with more pixels, by their header, before
        decoding them.
    quality_gate:
        The gradability gate behind ``quality`` (a run's ``quality.json``, or the default).
    """

    heatmap_method: str = "sensitivity"
    heatmap_size: int = 0
    calibration: Calibration = Calibration()
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    quality_gate: QualityGate = dataclasses.field(default_factory=default_quality_gate)

    def __post_init__(self):
        if self.heatmap_method not in METHODS:
            raise ValueError(
                f"heatmap_method {self.heatmap_method!r} is not one of {', '.join(METHODS)}"
            )
        if self.heatmap_size < 0:
            raise ValueError(f"heatmap_size must be >= 0 (0: input size), got {self.heatmap_size}")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be positive, got {self.max_image_pixels}")


def resolved_heatmap_size(config: SignatureConfig, input_size: int) -> int:
    """The heatmap side the export returns for ``input_size`` inputs.

    Raises
    ------
    ValueError
        If ``config.heatmap_size`` is larger than ``input_size`` or does not divide it.
    """
    size = config.heatmap_size or input_size
    if size > input_size or input_size % size:
        raise ValueError(
            f"heatmap_size {size} must divide the model input size {input_size} "
            f"(e.g. {input_size}, {input_size // 2}, {input_size // 4})"
        )
    return size


class ScreeningFunctions:
    """The exported computations of one model, as plain TensorFlow functions.

    Parameters
    ----------
    model:
        A drscreen chain model (float32 RGB (N, S, S, 3) in [0, 255] -> grade (N, 1)).
    config:
        Heatmap method and size, and the score calibration.
    lesion_model:
        The run's lesion student (`drscreen.models.runs.run_lesion_model`), or None: the
        ``lesions`` output is then the heatmap.
    """

    def __init__(
        self, model: keras.Model, config: SignatureConfig, lesion_model: keras.Model | None = None
    ):
        self.model = model
        self.config = config
        self.input_size = model_input_size(model)
        self.heatmap_size = resolved_heatmap_size(config, self.input_size)
        if lesion_model is not None:
            check_lesion_model(lesion_model, self.input_size)
        self.lesion_model = lesion_model

    def lesions_description(self) -> dict:
        """What the ``lesions`` output holds, for the export descriptions."""
        size = [self.input_size, self.input_size]
        if self.lesion_model is None:
            return {
                "map": "heatmap",
                "meaning": f"the {self.config.heatmap_method} heatmap at the input size (this "
                "model has no lesion student), zero outside the field of view",
                "range": [0.0, None],
                "size": size,
            }
        return {
            "map": "lesion student",
            "meaning": "probability that each pixel belongs to a lesion (the lesion student "
            "trained on pseudo-masks of the heatmap), zero outside the field of view",
            "range": [0.0, 1.0],
            "size": size,
        }

    def float_spec(self) -> tf.TensorSpec:
        """Input of ``predict_float`` and ``predict_score``."""
        size = self.input_size
        return tf.TensorSpec([None, size, size, 3], tf.float32, name=INPUT_NAME)

    def bytes_spec(self) -> tf.TensorSpec:
        """Input of ``serving_default``."""
        return tf.TensorSpec([None], tf.string, name=INPUT_NAME)

    def score(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """``score``, ``grade`` and ``quality`` (N,) of float images from one forward pass."""
        grade = self.model(images, training=False)[:, 0]
        with portable():  # the FOV mask as float ops, like predict's
            quality = self.quality(images, field_of_view_mask(images))
        return {"score": self._probability(grade), "grade": grade, "quality": quality}

    def quality(self, images: tf.Tensor, fov_masks: tf.Tensor) -> tf.Tensor:
        """The gate's probability (N,) that each cropped photograph is gradable."""
        return self.config.quality_gate.quality(gradability_features(images, fov_masks))

    def predict(
        self, images: tf.Tensor, fov_masks: tf.Tensor | None = None
    ) -> dict[str, tf.Tensor]:
        """``score``, ``grade``, ``quality`` (N,), ``heatmap`` (N, h, h) and ``lesions``
        (N, S, S) of float images.

        ``fov_masks`` (N, S, S) default to the masks derived from the images themselves.
        Built from portable ops (`drscreen.layers.portable`): every export traces it.
        """
        with portable():
            masks = field_of_view_mask(images) if fov_masks is None else fov_masks
            grade, heatmap = compute(
                self.model, images, method=self.config.heatmap_method, fov_masks=masks
            )
        if self.lesion_model is None:
            lesions = heatmap
        else:
            lesions = lesion_map(self.lesion_model, images, masks)
        factor = self.input_size // self.heatmap_size
        if factor > 1:
            heatmap = tf.nn.avg_pool2d(heatmap[..., tf.newaxis], factor, factor, "VALID")[..., 0]
        return {
            "score": self._probability(grade),
            "grade": grade,
            "heatmap": heatmap,
            "quality": self.quality(images, masks),
            LESIONS: lesions,
        }

    def preprocess(self, encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Decode, check and crop a batch of encoded photographs: images (N, S, S, 3), masks
        (N, S, S)."""
        size, max_pixels = self.input_size, self.config.max_image_pixels
        return tf.map_fn(
            lambda item: decode_and_crop(item, size, MIN_IMAGE_SIDE, max_pixels),
            encoded,
            fn_output_signature=(
                tf.TensorSpec([size, size, 3], tf.float32),
                tf.TensorSpec([size, size], tf.float32),
            ),
        )

    def predict_bytes(self, encoded: tf.Tensor) -> dict[str, tf.Tensor]:
        """The outputs of `predict` for encoded photographs, masked by their cropped FOV."""
        images, masks = self.preprocess(encoded)
        return self.predict(images, fov_masks=masks)

    def endpoints(self) -> dict[str, tuple]:
        """Signature name -> (function, input signature) for every exported signature."""
        return {
            SERVING_DEFAULT: (self.predict_bytes, [self.bytes_spec()]),
            PREDICT_FLOAT: (self._predict_images, [self.float_spec()]),
            PREDICT_SCORE: (self.score, [self.float_spec()]),
        }

    def _predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.predict(images)

    def _probability(self, grade: tf.Tensor) -> tf.Tensor:
        return self.config.calibration.probability(grade)
