"""The lesion student's map in evaluation and on overlays.

As a heatmap function (`lesion_function`), the student's FOV-masked probability map enters
`drscreen.evaluation.model_evaluation.evaluate_model` beside the heatmap methods, under its
own row (`drscreen.models.lesion_map.LESIONS`), scored by the same candidates, matching and
FROC. Being a probability, the lesions an overlay rings are where it is at least `PROBABLE`
(`probable_lesions`), not a fraction of the image's strongest.
"""

import keras
import numpy as np
import tensorflow as tf

from drscreen.evaluation.lesions import (
    MARK_SIGMA_PER_PIXEL,
    MARKED_CANDIDATES,
    CandidateConfig,
    extract_candidates,
)
from drscreen.evaluation.runner import HeatmapFunction
from drscreen.models.lesion_map import lesion_map

PROBABLE = 0.5
"""A peak of the lesion probability at or above this is ringed as a probable lesion."""


def lesion_function(model: keras.Model, student: keras.Model) -> HeatmapFunction:
    """``(images, fov_masks) -> (the screening model's grades, the student's lesion map)``."""

    @tf.function(reduce_retracing=True)
    def maps(images: tf.Tensor, fov_masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        grades = model(images, training=False)[:, 0]
        return grades, lesion_map(student, images, fov_masks)

    return maps


def probable_lesions(
    probability: np.ndarray,
    fov: np.ndarray | None = None,
    count: int = MARKED_CANDIDATES,
    level: float = PROBABLE,
) -> np.ndarray:
    """(K, 2) (row, column) of the probable lesions an overlay rings, strongest first.

    The peaks of the map smoothed as `drscreen.evaluation.lesions.candidates_to_mark`
    smooths (so a lesion whose probability saturates over many pixels is one peak, at its
    centre), kept where the probability itself is at least ``level``; at most ``count``.
    """
    probability = np.asarray(probability, np.float32)
    sigma = MARK_SIGMA_PER_PIXEL * max(probability.shape)
    found = extract_candidates(probability, fov, CandidateConfig(rule="peaks", sigma=sigma))
    if found.scores.size == 0:
        return np.zeros((0, 2), np.int64)
    rows, columns = found.positions.T
    return found.positions[probability[rows, columns] >= level][:count]
