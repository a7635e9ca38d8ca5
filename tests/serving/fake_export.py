"""A tiny SavedModel following drscreen's export contract, for serving tests.

Stands in for the real exporter: ``base/<version>/`` with signatures ``serving_default``
(encoded images), ``predict_float`` and ``predict_score`` (float images in [0, 255]). The
grade is 4·sigmoid of a linear read-out of a pooled convolution; the score is
sigmoid(2·(grade − 1.5)); the heatmap is Σ_c |∂grade/∂image|. Like a real export it declares its
float input range in ``drscreen_export.json``.
"""

import json
import os

import numpy as np
import tensorflow as tf


class TinyScreener(tf.Module):
    """A seeded conv → leaky ReLU → mean pool → linear screener on ``size``² RGB images."""

    def __init__(self, size: int, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.size = size
        self.kernel = tf.Variable(rng.normal(0.0, 0.5, (3, 3, 3, 4)).astype(np.float32))
        self.readout = tf.Variable(rng.normal(0.0, 1.0, (4,)).astype(np.float32))
        self.bias = tf.Variable(np.float32(rng.normal()))
        image_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        self.predict_float = tf.function(self._outputs, input_signature=[image_spec])
        self.predict_score = tf.function(self._score_outputs, input_signature=[image_spec])
        self.serving_default = tf.function(
            self._bytes_outputs, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
        )

    def grade(self, images: tf.Tensor) -> tf.Tensor:
        features = tf.nn.leaky_relu(
            tf.nn.conv2d(images / 255.0, self.kernel, 1, "SAME"), alpha=0.01
        )
        logit = tf.linalg.matvec(tf.reduce_mean(features, axis=[1, 2]), self.readout) + self.bias
        return 4.0 * tf.sigmoid(logit)

    def quality(self, images: tf.Tensor) -> tf.Tensor:
        """A stand-in gate: brighter photographs are more gradable."""
        return tf.sigmoid(tf.reduce_mean(images, axis=[1, 2, 3]) / 32.0 - 1.0)

    def _score_outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        grade = self.grade(images)
        return {
            "score": tf.sigmoid(2.0 * (grade - 1.5)),
            "grade": grade,
            "quality": self.quality(images),
        }

    def _outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(images)
            grade = self.grade(images)
            total = tf.reduce_sum(grade)
        heatmap = tf.reduce_sum(tf.abs(tape.gradient(total, images)), axis=-1)
        return {
            "score": tf.sigmoid(2.0 * (grade - 1.5)),
            "grade": grade,
            "heatmap": heatmap,
            "quality": self.quality(images),
        }

    def _decode(self, encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), [self.size, self.size])

    def _bytes_outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        spec = tf.TensorSpec([self.size, self.size, 3], tf.float32)
        return self._outputs(tf.map_fn(self._decode, images, fn_output_signature=spec))


def build_fake_export(base_path: str, version: int, size: int = 16, seed: int = 0) -> str:
    """Write ``base_path/<version>`` (atomically, by renaming a finished directory)."""
    module = TinyScreener(size, seed)
    final = os.path.join(base_path, str(version))
    staging = os.path.join(base_path, f".staging-{version}")
    tf.saved_model.save(
        module,
        staging,
        signatures={
            "serving_default": module.serving_default,
            "predict_float": module.predict_float,
            "predict_score": module.predict_score,
        },
    )
    with open(os.path.join(staging, "drscreen_export.json"), "w", encoding="utf-8") as file:
        json.dump({"input": {"name": "images", "size": size, "range": [0.0, 255.0]}}, file)
    os.rename(staging, final)
    return final
