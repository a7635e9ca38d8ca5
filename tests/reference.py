"""Independent references for what the evaluator reports: a model's predicted grades computed
here with Keras on the pipeline's images, and the figures scikit-learn gives on them."""

from collections.abc import Iterable

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression

from drscreen.data import pipeline
from drscreen.data.records import FundusRecord
from drscreen.models.calibration import DEFAULT_L2, Calibration


def grades_and_predictions(
    model: keras.Model | str, records: Iterable[FundusRecord], size: int
) -> dict[str, tuple[int, float]]:
    """``{image_id: (grade, ŷ)}`` of ``records`` (a model or its ``.keras`` file), ŷ from the
    model itself on the evaluation pipeline's crops."""
    if not isinstance(model, keras.Model):
        model = keras.saving.load_model(model)
    batches = pipeline.dataset_for_evaluation(
        list(records), pipeline.PipelineConfig(image_size=size, augment=None)
    )
    found = {}
    for batch in batches:
        predictions = model(batch["image"], training=False)[:, 0].numpy()
        for image_id, grade, prediction in zip(
            batch["image_id"].numpy(), batch["grade"].numpy(), predictions, strict=True
        ):
            found[image_id.decode()] = (int(grade), float(prediction))
    return found


def platt_calibration(predictions: np.ndarray, referable: np.ndarray) -> Calibration:
    """scikit-learn's logistic regression of ``referable`` on ŷ with the slope's L2 prior of
    `drscreen.models.calibration.fit_referable_calibration` (C = 1 / l2)."""
    fitted = LogisticRegression(C=1 / DEFAULT_L2, tol=1e-12, max_iter=10_000)
    fitted.fit(np.asarray(predictions, np.float64).reshape(-1, 1), referable)
    slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    return Calibration(midpoint=-intercept / slope, scale=1 / slope)
