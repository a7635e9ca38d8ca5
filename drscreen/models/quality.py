"""The gradability gate: measured image quality -> probability that a photograph is gradable.

A screening result is only as good as the photograph. `QualityGate` is a logistic regression
on the standardised `drscreen.data.gradability.FEATURE_NAMES` (sharpness, exposure,
field-of-view coverage, colour, shadows), fitted on photographs labelled gradable or not
(`fit_quality_gate`); ``quality`` is its probability that the photograph is gradable, and a
photograph is **ungradable** when its quality is at or below ``threshold``, which is chosen
on validation photographs so that a target share (95 % by default) of the ungradable ones
are caught. It is a second model beside the screening network, not a head on it: the
network stays a chain of drscreen layers with an exact heatmap, and the gate can be refitted
on a programme's own labelled photographs without retraining the network.

Where a gate comes from (`resolve_quality_gate`): the run's ``quality.json``
(`drscreen.models.runs.RunDirectory`) when it has one, else the gate shipped with drscreen
(``quality_gate.json`` beside this module), fitted by ``scripts/fit_quality_gate.py`` on
synthetic photographs of the ``screening`` mix; its file records how.
"""

import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from drscreen.data.gradability import ANALYSIS_SIZE, FEATURE_NAMES
from drscreen.models.logistic import fit_logistic

DEFAULT_GATE_FILE = pathlib.Path(__file__).with_name("quality_gate.json")
DEFAULT_TARGET_SENSITIVITY = 0.95
DEFAULT_L2 = 1.0


@dataclasses.dataclass(frozen=True)
class QualityGate:
    """A fitted gradability gate: ``quality = sigmoid(weights . (features - means) / scales
    + bias)``, ungradable when ``quality <= threshold``.

    Attributes
    ----------
    means, scales:
        Standardisation of each feature of `FEATURE_NAMES` (from the fitting photographs).
    weights, bias:
        The logistic regression on the standardised features (positive: more gradable).
    threshold:
        Quality at or below which a photograph is ungradable (chosen on validation).
    fitted_on:
        What the gate was fitted and its threshold chosen on, for people.
    """

    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    fitted_on: str = ""

    def __post_init__(self):
        sizes = {len(self.means), len(self.scales), len(self.weights)}
        if sizes != {len(FEATURE_NAMES)}:
            raise ValueError(
                f"a quality gate needs {len(FEATURE_NAMES)} means, scales and weights (one per "
                f"feature of {FEATURE_NAMES}), got {sorted(sizes)}"
            )
        values = (*self.means, *self.scales, *self.weights, self.bias, self.threshold)
        if not all(math.isfinite(value) for value in values):
            raise ValueError("a quality gate's numbers must be finite")
        if not all(scale > 0 for scale in self.scales):
            raise ValueError(f"quality gate scales must be > 0, got {self.scales}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"quality gate threshold must be in [0, 1], got {self.threshold}")

    def logits(self, features: tf.Tensor | np.ndarray) -> tf.Tensor | np.ndarray:
        """The gate's logit (N,) of features (N, F): a tensor for a tensor, else float64."""
        if tf.is_tensor(features):
            standard = (features - tf.constant(self.means, features.dtype)) / tf.constant(
                self.scales, features.dtype
            )
            weights = tf.constant(self.weights, features.dtype)
            return tf.reduce_sum(standard * weights, axis=-1) + tf.cast(self.bias, features.dtype)
        return self.contributions(features).sum(axis=-1) + self.bias

    def quality(self, features: tf.Tensor | np.ndarray) -> tf.Tensor | np.ndarray:
        """Probability (N,) that each photograph is gradable."""
        logits = self.logits(features)
        if tf.is_tensor(logits):
            return tf.sigmoid(logits)
        return 0.5 * (1.0 + np.tanh(0.5 * logits))

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """(N, F) each feature's term of the logit (negative: pushes towards ungradable)."""
        standard = (np.asarray(features, np.float64) - self.means) / np.asarray(self.scales)
        return standard * np.asarray(self.weights)

    def ungradable(self, quality: np.ndarray) -> np.ndarray:
        """Whether each quality (N,) is at or below the threshold."""
        return np.asarray(quality) <= self.threshold

    def to_dict(self) -> dict:
        """JSON-ready values, with the feature names and analysis size they belong to."""
        return {
            "features": list(FEATURE_NAMES),
            "analysis_size": ANALYSIS_SIZE,
            **{field.name: getattr(self, field.name) for field in dataclasses.fields(self)},
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> "QualityGate":
        """The gate of a `to_dict` mapping.

        Raises
        ------
        ValueError
            If it was fitted on other features or another analysis size, or a value is
            missing or invalid.
        """
        if list(values.get("features", ())) != list(FEATURE_NAMES):
            raise ValueError(
                f"quality gate features {values.get('features')} are not drscreen's "
                f"{list(FEATURE_NAMES)}; refit it with scripts/fit_quality_gate.py"
            )
        if values.get("analysis_size") != ANALYSIS_SIZE:
            raise ValueError(
                f"quality gate analysis size {values.get('analysis_size')} is not {ANALYSIS_SIZE}"
            )
        try:
            return cls(
                means=tuple(float(v) for v in values["means"]),
                scales=tuple(float(v) for v in values["scales"]),
                weights=tuple(float(v) for v in values["weights"]),
                bias=float(values["bias"]),
                threshold=float(values["threshold"]),
                fitted_on=str(values.get("fitted_on", "")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"quality gate lacks or mistypes {error}") from error

    def save(self, path: str | pathlib.Path, **provenance) -> pathlib.Path:
        """Write `to_dict` (and ``provenance``, e.g. the command and validation figures)."""
        path = pathlib.Path(path)
        path.write_text(json.dumps({**self.to_dict(), **provenance}, indent=2) + "\n")
        return path


def load_quality_gate(path: str | pathlib.Path) -> QualityGate:
    """The gate of a ``quality.json`` file.

    Raises
    ------
    ValueError
        Naming the file, when it is not valid JSON or not a gate of these features.
    """
    path = pathlib.Path(path)
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("expected a JSON object")
        return QualityGate.from_dict(values)
    except ValueError as error:
        raise ValueError(f"quality gate {str(path)!r} is invalid: {error}") from error


def default_quality_gate() -> QualityGate:
    """The gate shipped with drscreen (``quality_gate.json``, see the module docstring)."""
    return load_quality_gate(DEFAULT_GATE_FILE)


def resolve_quality_gate(run_gate: tuple[QualityGate, str] | None) -> tuple[QualityGate, str]:
    """The gate a command uses and its source: the run's (as `drscreen.models.runs.
    run_quality_gate` returns it), else the default one and its file."""
    if run_gate is not None:
        return run_gate
    return default_quality_gate(), str(DEFAULT_GATE_FILE)


def threshold_for_catching(
    quality: np.ndarray, gradable: np.ndarray, target: float = DEFAULT_TARGET_SENSITIVITY
) -> float:
    """The lowest threshold at which ``quality <= threshold`` catches ``target`` of the
    ungradable photographs (so the fewest gradable ones are flagged)."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    caught = np.sort(np.asarray(quality, np.float64)[~np.asarray(gradable, bool)])
    if caught.size == 0:
        raise ValueError("no ungradable photograph to choose the threshold on")
    return float(caught[math.ceil(target * caught.size - 1e-9) - 1])


def fit_quality_gate(
    features: np.ndarray,
    gradable: np.ndarray,
    validation_features: np.ndarray,
    validation_gradable: np.ndarray,
    target: float = DEFAULT_TARGET_SENSITIVITY,
    l2: float = DEFAULT_L2,
    fitted_on: str = "",
) -> QualityGate:
    """Fit the gate on labelled photographs and choose its threshold on validation ones.

    Parameters
    ----------
    features, gradable:
        (N, F) `gradability_features` of the fitting photographs and their labels (True:
        gradable).
    validation_features, validation_gradable:
        The same for the photographs the threshold is chosen on.
    target:
        Share of the validation ungradable photographs the threshold catches.
    l2:
        Prior strength on the standardised weights (sklearn ``C = 1 / l2``); the bias is
        not penalised.
    fitted_on:
        Recorded in the gate.

    Raises
    ------
    ValueError
        When either set lacks gradable or ungradable photographs, or shapes differ.
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(gradable, bool)
    if x.ndim != 2 or x.shape != (y.size, len(FEATURE_NAMES)):
        raise ValueError(
            f"features {x.shape} must be (N, {len(FEATURE_NAMES)}) for {y.size} labels"
        )
    if y.all() or not y.any():
        raise ValueError("fitting a quality gate needs gradable and ungradable photographs")
    means = x.mean(axis=0)
    scales = np.maximum(x.std(axis=0), 1e-6)
    design = np.concatenate([(x - means) / scales, np.ones((y.size, 1))], axis=1)
    prior = np.concatenate([np.full(len(FEATURE_NAMES), l2), [0.0]])
    weights = fit_logistic(design, y, prior)
    gate = QualityGate(
        tuple(means), tuple(scales), tuple(weights[:-1]), float(weights[-1]), 0.0, fitted_on
    )
    threshold = threshold_for_catching(
        gate.quality(validation_features), validation_gradable, target
    )
    return dataclasses.replace(gate, threshold=threshold)
