"""The gradability gate: its formula, threshold, file, fit against scikit-learn."""

import json

import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from drscreen.data.gradability import FEATURE_NAMES
from drscreen.models.quality import (
    DEFAULT_GATE_FILE,
    QualityGate,
    default_quality_gate,
    fit_quality_gate,
    load_quality_gate,
    resolve_quality_gate,
    threshold_for_catching,
)

F = len(FEATURE_NAMES)


def _gate(**changes) -> QualityGate:
    values = dict(
        means=(1.0,) * F, scales=(2.0,) * F, weights=(0.5,) + (0.0,) * (F - 1), bias=0.25,
        threshold=0.4,
    )  # fmt: skip
    return QualityGate(**{**values, **changes})


def test_quality_by_hand_in_numpy_and_tensorflow():
    """quality = sigmoid(0.5 * (x0 - 1) / 2 + 0.25), the same for arrays and tensors."""
    features = np.zeros((2, F))
    features[:, 0] = [1.0, 5.0]
    expected = 1 / (1 + np.exp(-np.array([0.25, 0.5 * 2 + 0.25])))
    gate = _gate()
    np.testing.assert_allclose(gate.quality(features), expected, rtol=1e-12)
    tensor = tf.function(gate.quality)(tf.constant(features, tf.float32))
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6)
    assert list(gate.ungradable(np.array([0.4, 0.41]))) == [True, False]


def test_threshold_catches_the_target_share():
    """Ten ungradable qualities 0.1..1.0: catching 80 % needs quality <= 0.8."""
    quality = np.r_[np.arange(1, 11) / 10, [0.05, 0.95]]
    gradable = np.r_[[False] * 10, [True, True]]
    assert threshold_for_catching(quality, gradable, 0.8) == pytest.approx(0.8)
    assert threshold_for_catching(quality, gradable, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no ungradable"):
        threshold_for_catching(quality, np.ones(12, bool))


def test_fit_matches_sklearn_on_standardised_features():
    """The fitted weights are LogisticRegression(C=1/l2)'s on the standardised features."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, F)) * rng.uniform(0.5, 3, F) + rng.normal(size=F)
    gradable = (x[:, 0] - 0.5 * x[:, 1] + rng.logistic(size=400)) > 0
    gate = fit_quality_gate(x, gradable, x[:200], gradable[:200], target=0.9, l2=1.0)
    standard = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(standard, gradable)
    np.testing.assert_allclose(gate.weights, reference.coef_[0], atol=1e-6)
    np.testing.assert_allclose(gate.bias, reference.intercept_[0], atol=1e-6)
    caught = gate.ungradable(gate.quality(x[:200]))[~gradable[:200]]
    assert caught.mean() >= 0.9


def test_file_round_trip_and_invalid_files(tmp_path):
    """save/load keep the gate; another feature list or a bad value is refused by name."""
    gate = _gate(fitted_on="hand")
    path = gate.save(tmp_path / "quality.json", command="test")
    assert load_quality_gate(path) == gate
    values = json.loads(path.read_text())
    values["features"] = ["sharpness"]
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match="quality.json.*refit"):
        load_quality_gate(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_quality_gate(path)
    with pytest.raises(ValueError, match="scales must be > 0"):
        _gate(scales=(0.0,) * F)
    with pytest.raises(ValueError, match="threshold"):
        _gate(threshold=1.5)


def test_run_gate_wins_over_the_shipped_one():
    gate = _gate()
    assert resolve_quality_gate((gate, "run/quality.json")) == (gate, "run/quality.json")
    assert resolve_quality_gate(None) == (default_quality_gate(), str(DEFAULT_GATE_FILE))
