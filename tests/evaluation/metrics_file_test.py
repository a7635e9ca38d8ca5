"""metrics.json stays a readable summary: long curves go to curves.csv, losslessly."""

import csv
import json

import numpy as np
import pytest

from drscreen.evaluation import report


def _curves(path) -> dict[tuple[str, str], list[float]]:
    found: dict[tuple[str, str], list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = found.setdefault((row["curve"], row["field"]), [])
            assert int(row["index"]) == len(values)
            values.append(float(row["value"]))
    return found


def test_long_lists_leave_metrics_json_for_curves_csv(tmp_path):
    """A FROC curve of 20,000 candidates and a ROC of 5,000 images (1.2 MB as JSON) become a
    summary of a few kB and CSV rows that give back every value; short lists stay inline."""
    rng = np.random.default_rng(0)
    froc = {"false_positives_per_image": rng.random(20_000), "sensitivity": rng.random(20_000)}
    roc = {"false_positive_rate": rng.random(5_000), "true_positive_rate": rng.random(5_000)}
    metrics = {
        "screening": {"referable_dr": {"auc": 0.9, "auc_ci": [0.8, 0.95], "roc": roc}},
        "methods": {"sensitivity": {"lesions": {"red": {"froc": froc, "froc_score": 0.4}}}},
        "referral": {"curves": {"entropy": {"auc": [0.5] * 11}}},
    }
    assert len(json.dumps(report.json_safe(metrics))) > 1_000_000
    summary = report.write_metrics(
        str(tmp_path / "metrics.json"), str(tmp_path / "curves.csv"), metrics
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == summary and (tmp_path / "metrics.json").stat().st_size < 5_000
    assert written["screening"]["referable_dr"]["auc_ci"] == [0.8, 0.95]
    assert written["screening"]["referable_dr"]["roc"] == {
        "curves_csv": "screening/referable_dr/roc",
        "points": 5_000,
    }
    red = written["methods"]["sensitivity"]["lesions"]["red"]
    assert red["froc_score"] == 0.4 and red["froc"]["points"] == 20_000
    assert written["referral"]["curves"]["entropy"]["auc"] == [0.5] * 11
    curves = _curves(tmp_path / "curves.csv")
    path = "methods/sensitivity/lesions/red/froc"
    np.testing.assert_array_equal(curves[(path, "sensitivity")], froc["sensitivity"])
    np.testing.assert_array_equal(
        curves[("screening/referable_dr/roc", "true_positive_rate")], roc["true_positive_rate"]
    )
    assert len(curves) == 4


@pytest.mark.parametrize("length", [report.MAX_INLINE, report.MAX_INLINE + 1])
def test_the_inline_limit(tmp_path, length):
    """A list of MAX_INLINE values stays in metrics.json; one more moves."""
    summary, rows = report.split_curves({"a": {"values": list(range(length))}})
    moved = length > report.MAX_INLINE
    assert ("values" in summary["a"]) != moved and len(rows) == (length if moved else 0)
