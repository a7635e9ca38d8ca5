"""Referable-DR probability from the grade regression.

The networks regress the ICDR grade (0-4). Screening needs a probability that the eye is
referable (grade >= `drscreen.data.lesions.REFERABLE_GRADE`). We map the predicted grade
through a logistic centred between grades 1 and 2:

    p = 1 / (1 + exp(-(grade - midpoint) / scale))

The defaults (1.5, 0.25) put grade 1 at p = 0.12 and grade 2 at p = 0.88. They are not
calibrated: `fit_referable_calibration` fits ``midpoint`` and ``scale`` to a model's predicted
grades by maximum likelihood (Platt scaling), and training writes the fit on the validation
split to ``RUN_DIR/calibration.json`` (`drscreen.models.runs.RunDirectory`).
"""

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import tensorflow as tf

from drscreen.models.logistic import fit_logistic

DEFAULT_MIDPOINT = 1.5
DEFAULT_SCALE = 0.25
DEFAULT_L2 = 1e-2


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Parameters of `referable_probability`: ``sigmoid((grade - midpoint) / scale)``.

    Attributes
    ----------
    midpoint:
        Grade at which the referable probability is 0.5 (finite).
    scale:
        Logistic scale in grade units (finite, > 0).
    """

    midpoint: float = DEFAULT_MIDPOINT
    scale: float = DEFAULT_SCALE

    def __post_init__(self):
        if not np.isfinite(self.midpoint):
            raise ValueError(f"calibration midpoint must be finite, got {self.midpoint}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"calibration scale must be finite and > 0, got {self.scale}")

    def to_dict(self) -> dict[str, float]:
        """``{"midpoint": ..., "scale": ...}`` (JSON-ready)."""
        return {"midpoint": float(self.midpoint), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, values: Mapping) -> "Calibration":
        """The calibration of a `to_dict` mapping (other keys are ignored).

        Raises
        ------
        ValueError
            If ``midpoint`` or ``scale`` is missing, not a number or out of range.
        """
        missing = [key for key in ("midpoint", "scale") if key not in values]
        if missing:
            raise ValueError(f"calibration is missing {missing}")
        try:
            return cls(midpoint=float(values["midpoint"]), scale=float(values["scale"]))
        except (TypeError, ValueError) as error:
            raise ValueError(f"calibration {dict(values)} is invalid: {error}") from error

    def as_overrides(self, source: str) -> dict[str, tuple[float, str]]:
        """Both parameters as `resolve_calibration` overrides coming from ``source``."""
        return {"midpoint": (self.midpoint, source), "scale": (self.scale, source)}

    def probability(self, grade: np.ndarray | tf.Tensor | float) -> np.ndarray | tf.Tensor:
        """`referable_probability` of ``grade`` with this calibration."""
        return referable_probability(grade, self.midpoint, self.scale)


CalibrationOverrides = Mapping[str, tuple[float, str]]
"""Explicit ``midpoint`` and/or ``scale`` values, each with its source (e.g. a flag name)."""


def resolve_calibration(
    run_calibration: tuple[Calibration, str] | None,
    overrides: CalibrationOverrides = MappingProxyType({}),
) -> tuple[Calibration, str]:
    """The calibration a command uses, and where it came from: the one rule for every command.

    Each parameter (``midpoint``, ``scale``) takes, in order: its override, the run's
    calibration (``(calibration, path)`` as `drscreen.models.runs.run_calibration` returns it),
    the default `Calibration()`.

    Parameters
    ----------
    run_calibration:
        The run directory's calibration and its file, or None.
    overrides:
        ``{"midpoint": (value, source), "scale": (value, source)}``, either key optional.

    Returns
    -------
    The calibration, and its sources joined by ", ": the overrides' (in parameter order,
    each once), then the run's file when it still provides a parameter; ``"default"`` when
    neither provides any.

    Raises
    ------
    ValueError
        For an unknown override name or an invalid resulting calibration.
    """
    unknown = sorted(set(overrides) - {"midpoint", "scale"})
    if unknown:
        raise ValueError(f"unknown calibration overrides {unknown}; known: midpoint, scale")
    base, file_source = run_calibration or (Calibration(), None)
    values = base.to_dict()
    sources: list[str] = []
    for name in ("midpoint", "scale"):
        if name in overrides:
            values[name], source = overrides[name]
            if source not in sources:
                sources.append(source)
    if file_source is not None and len(overrides) < 2:
        sources.append(file_source)
    return Calibration(**values), ", ".join(sources) or "default"


def fit_referable_calibration(
    grades: np.ndarray, referable_labels: np.ndarray, l2: float = DEFAULT_L2
) -> Calibration:
    """Maximum-likelihood logistic calibration of predicted grades (Platt scaling).

    Fits ``p = sigmoid(slope * grade + intercept)`` with `drscreen.models.logistic.
    fit_logistic`, minimising the summed log loss plus ``l2 / 2 * slope**2``. The prior keeps the
    slope, hence ``1 / scale``, finite when the grades separate the classes; the intercept
    is not penalised. This is sklearn's ``LogisticRegression(C=1 / l2)`` on one feature.

    Parameters
    ----------
    grades:
        Predicted grades ŷ (any shape, flattened).
    referable_labels:
        1/True where the eye is referable, 0/False otherwise; the shape of ``grades``.
    l2:
        Strength of the Gaussian prior on the slope (> 0).

    Returns
    -------
    ``Calibration(midpoint=-intercept / slope, scale=1 / slope)``.

    Raises
    ------
    ValueError
        Empty, mismatched, non-finite or non-binary input; one class only; or grades that do
        not increase with referability (fitted slope <= 0).
    """
    if not l2 > 0:
        raise ValueError(f"fit_referable_calibration: l2 must be > 0, got {l2}")
    x = np.asarray(grades, dtype=np.float64).ravel()
    labels = np.asarray(referable_labels).ravel()
    if x.shape != labels.shape:
        raise ValueError(f"grades {x.shape} and referable_labels {labels.shape} differ in length")
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("fit_referable_calibration: grades must be non-empty and finite")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("fit_referable_calibration: referable_labels must be 0/1")
    y = labels.astype(np.float64)
    positives = int(y.sum())
    if positives in (0, y.size):
        raise ValueError(
            f"fit_referable_calibration: all {y.size} labels are {int(y[0])}; "
            "calibration needs referable and non-referable eyes"
        )
    slope, intercept = fit_logistic(np.stack([x, np.ones_like(x)], axis=1), y, np.array([l2, 0.0]))
    if not slope > 1e-12:
        raise ValueError(
            f"fit_referable_calibration: the predicted grades do not increase with "
            f"referability (fitted slope {slope:.3g}); cannot calibrate"
        )
    return Calibration(midpoint=float(-intercept / slope), scale=float(1.0 / slope))


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
