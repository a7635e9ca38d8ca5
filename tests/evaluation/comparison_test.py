"""Tests of the heatmap-method comparison table."""

import pytest

from drscreen.evaluation import comparison, report, sections


def _lesion_metrics(red_froc: float) -> dict:
    return {
        "red_lesions": {
            "froc_score": red_froc,
            "sensitivity_at_fp": {"1": 0.5},
            "image_auc": 0.75,
            "relevance_mass": 0.2,
            "pointing_game": 0.4,
        },
        "bright_lesions": {"froc_score": 0.1, "sensitivity_at_fp": {"1": 0.05}, "image_auc": 0.6},
        "all_lesions": {"relevance_mass": 0.3},
    }


def _scores(red_froc: float, seconds: float | None = 0.5) -> dict:
    return sections.method_section(
        _lesion_metrics(red_froc), {"deletion_auc": 0.3, "insertion_auc": 0.7}, seconds
    )


def test_rows_follow_the_paper_order_with_every_column():
    """Rows come in ROW_ORDER whatever the input order, each with every table column."""
    results = {
        "gradcam": _scores(0.2),
        comparison.HEATMAP_AWARE: _scores(0.4),
        "sensitivity": _scores(0.3),
    }
    rows = comparison.comparison_rows(results)
    assert [row["method"] for row in rows] == [
        comparison.ROW_LABELS["sensitivity"],
        comparison.ROW_LABELS[comparison.HEATMAP_AWARE],
        comparison.ROW_LABELS["gradcam"],
    ]
    for row in rows:
        assert set(row) == {key for key, _ in report.COMPARISON_COLUMNS}
    assert [row["froc_score/red_lesions"] for row in rows] == [0.3, 0.4, 0.2]


def test_row_values_come_from_the_method_figures():
    """Each cell is read from the named lesion group, perturbation metric or timing."""
    (row,) = comparison.comparison_rows({"lrp": _scores(0.25, seconds=1.5)})
    assert row == {
        "method": "LRP-ε",
        "froc_score/red_lesions": 0.25,
        "froc_score/bright_lesions": 0.1,
        "sensitivity_at_1fp/red_lesions": 0.5,
        "sensitivity_at_1fp/bright_lesions": 0.05,
        "image_auc/red_lesions": 0.75,
        "image_auc/bright_lesions": 0.6,
        "relevance_mass/red_lesions": 0.2,
        "relevance_mass/all_lesions": 0.3,
        "pointing_game/red_lesions": 0.4,
        "deletion_auc": 0.3,
        "insertion_auc": 0.7,
        "seconds_per_image": 1.5,
    }


def test_missing_lesion_figures_are_empty_cells():
    """Without masks the lesion columns are None, the others still filled."""
    scores = sections.method_section({}, {"deletion_auc": 0.3, "insertion_auc": 0.7}, 0.1)
    (row,) = comparison.comparison_rows({"sensitivity": scores})
    assert row["froc_score/red_lesions"] is None and row["relevance_mass/red_lesions"] is None
    assert row["deletion_auc"] == 0.3 and row["seconds_per_image"] == 0.1


def test_every_row_has_a_label():
    """All rows of the paper's comparison are named."""
    assert set(comparison.ROW_ORDER) == set(comparison.ROW_LABELS)
    rows = comparison.comparison_rows({key: _scores(0.1) for key in comparison.ROW_ORDER})
    assert len(rows) == len(comparison.ROW_ORDER)


def test_unknown_row_is_rejected():
    """A method that is not in the table raises, naming it."""
    with pytest.raises(ValueError, match="occlusion"):
        comparison.comparison_rows({"occlusion": _scores(0.1)})
