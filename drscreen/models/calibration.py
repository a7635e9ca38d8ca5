"""Referable-DR probability from the grade regression.

The networks regress the ICDR grade (0-4). Screening needs a probability that the eye is
referable (grade >= `drscreen.data.lesions.REFERABLE_GRADE`). We map the predicted grade
through a logistic centred between grades 1 and 2:

    p = 1 / (1 + exp(-(grade - midpoint) / scale))

``midpoint`` and ``scale`` are parameters so that evaluation can calibrate them on validation
data; the defaults (1.5, 0.25) put grade 1 at p = 0.12 and grade 2 at p = 0.88.
"""

import numpy as np
import tensorflow as tf

DEFAULT_MIDPOINT = 1.5
DEFAULT_SCALE = 0.25


def referable_probability(
    grade: np.ndarray | tf.Tensor | float,
    midpoint: float = DEFAULT_MIDPOINT,
    scale: float = DEFAULT_SCALE,
) -> np.ndarray | tf.Tensor:
    """Probability of referable DR as a logistic function of the predicted grade.

    Parameters
    ----------
    grade:
        Predicted grades (any shape). A `tf.Tensor` gives a tensor (usable inside a
        `tf.function`); anything else gives a float64 numpy array.
    midpoint:
        Grade at which the probability is 0.5.
    scale:
        Logistic scale in grade units (> 0): smaller is sharper.

    Returns
    -------
    Probabilities in [0, 1], the shape of ``grade``.
    """
    if not scale > 0:
        raise ValueError(f"referable_probability: scale must be > 0, got {scale}")
    if tf.is_tensor(grade):
        return tf.math.sigmoid(
            (grade - tf.cast(midpoint, grade.dtype)) / tf.cast(scale, grade.dtype)
        )
    logits = (np.asarray(grade, dtype=np.float64) - midpoint) / scale
    return 0.5 * (1.0 + np.tanh(0.5 * logits))
