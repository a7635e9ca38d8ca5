"""Tests of metrics.json and report.md."""

import json
import math

import numpy as np
import pytest

from drscreen.evaluation import report, sections

CONTEXT = {"dataset": "synthetic", "model": "net_a.keras", "command": "drscreen evaluate"}


def _lesion_metrics() -> dict:
    entry = {"froc_score": 0.5, "sensitivity_at_fp": {"1": 0.6}, "image_auc": 0.8}
    return {
        "red_lesions": {**entry, "relevance_mass": 0.25, "pointing_game": 0.75},
        "bright_lesions": {**entry, "image_auc": None},
    }


def test_json_safe_converts_numpy_and_non_finite():
    """numpy scalars and arrays become JSON types, NaN and inf become null."""
    value = {"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan"), "d": (np.inf,)}
    assert report.json_safe(value) == {"a": 0.5, "b": [1, 2], "c": None, "d": [None]}


def test_comparison_row_reads_a_method_section():
    """Row values come from the red/bright/all groups and the perturbation metrics."""
    section = sections.method_section(
        _lesion_metrics(), {"deletion_auc": 0.1, "insertion_auc": 0.9}, 0.02
    )
    row = report.comparison_row("gradient", section)
    assert row["froc_score/red_lesions"] == 0.5
    assert row["sensitivity_at_1fp/bright_lesions"] == 0.6
    assert row["image_auc/bright_lesions"] is None
    assert row["relevance_mass/red_lesions"] == 0.25 and row["pointing_game/red_lesions"] == 0.75
    assert row["relevance_mass/all_lesions"] is None
    assert row["deletion_auc"] == 0.1 and row["seconds_per_image"] == 0.02
    assert set(row) == {key for key, _ in report.COMPARISON_COLUMNS}


def test_write_report(tmp_path):
    """metrics.json parses strictly; report.md has the table and links the figures."""
    figure = tmp_path / "figures" / "roc.png"
    figure.parent.mkdir()
    figure.write_bytes(b"png")
    methods = {
        name: sections.method_section(_lesion_metrics(), {}, seconds)
        for name, seconds in (("gradient", 0.02), ("grad-cam", 0.01))
    }
    metrics = {"methods": methods, "extra": {"nan": float("nan")}}
    rows = [report.comparison_row(name, section) for name, section in methods.items()]
    metrics_path, report_path = report.write_report(
        str(tmp_path / "out"), metrics, {"ROC curves": str(figure)}, rows, CONTEXT
    )

    def strict(constant):
        raise AssertionError(f"non-JSON constant {constant}")

    with open(metrics_path) as f:
        written = json.load(f, parse_constant=strict)
    assert written["metrics"]["extra"]["nan"] is None
    assert written["context"] == CONTEXT
    assert math.isclose(written["comparison"][1]["seconds_per_image"], 0.01)
    text = open(report_path).read()
    assert "![ROC curves](../figures/roc.png)" in text
    assert "| Heatmap method | FROC score, red lesions |" in text
    assert "| grad-cam | 0.500 |" in text
    assert "FROC score, red lesions | 0.500 (sens. @ 1 FP/image 0.600" in text


def test_write_report_requires_context(tmp_path):
    """The report must say which dataset, model and command produced it."""
    with pytest.raises(ValueError, match="command"):
        report.write_report(str(tmp_path), {}, {}, None, {"dataset": "x", "model": "y"})
