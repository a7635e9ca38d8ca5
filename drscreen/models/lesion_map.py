"""The lesion map a run ships beside its screening model: its lesion student's output.

The student (``lesions.keras``, trained by `drscreen.training.student` on pseudo-masks drawn
from the screening model's heatmap) is a `drscreen.models.segmentation.segmentation_net` of
one channel: float32 RGB (N, S, S, 3) in [0, 255] -> (N, S, S, 1) in [0, 1]. Its lesion map
is that channel times the field-of-view mask, a per-pixel lesion probability. One function
computes it (`lesion_map`), so the exports, evaluation and ``drscreen predict`` agree. Must
not train.
"""

import keras
import tensorflow as tf

LESIONS = "lesions"
"""The lesion map's name wherever it appears: the exports' output, the metrics row."""


def check_lesion_model(student: keras.Model, input_size: int, name: str = "lesion model") -> None:
    """Refuse a student that does not map (N, S, S, 3) images to one (N, S, S, 1) map.

    Raises
    ------
    ValueError
        Naming ``name``, the shapes found and ``input_size`` (the screening model's).
    """
    if len(student.inputs) != 1 or len(student.outputs) != 1:
        raise ValueError(f"{name} must have one image input and one output")
    given = tuple(student.inputs[0].shape)
    output = tuple(student.outputs[0].shape)
    expected = (None, input_size, input_size)
    if given != (*expected, 3) or output != (*expected, 1):
        raise ValueError(
            f"{name} must map (N, {input_size}, {input_size}, 3) images (the screening "
            f"model's input) to (N, {input_size}, {input_size}, 1) maps; it maps {given} to "
            f"{output}"
        )


def lesion_map(student: keras.Model, images: tf.Tensor, fov_masks: tf.Tensor) -> tf.Tensor:
    """The student's lesion probability (N, S, S), zero outside the field of view."""
    return student(images, training=False)[..., 0] * fov_masks
