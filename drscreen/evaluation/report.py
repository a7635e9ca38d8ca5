"""The evaluation report: `metrics.json` and `curves.csv` (machine-readable), `report.md`.

`metrics.json` is a readable summary: every list longer than `MAX_INLINE` values (ROC and FROC
curves, with a point per image or per lesion candidate) goes to `curves.csv` instead, one row
per value (``curve``: the JSON path of the dict that held it, ``field``, ``index``,
``value``), and its dict says so (``"curves_csv"``: that path, ``"points"``). `write_metrics`
writes both; training's run directory and ``drscreen evaluate`` use it. `report.md` states what
was evaluated, heads with the model card, summarises the headline metrics, embeds the figures
and shows the heatmap-method comparison table. Owns formatting only; computes no metric.
"""

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from drscreen.data.staging import write_atomically
from drscreen.evaluation.streaming import DIAGNOSTIC_TARGETS

# (key in a comparison row, column header); the keys are those of
# `drscreen.evaluation.sections.method_summary`, rows come from `comparison_row`.
COMPARISON_COLUMNS = (
    ("method", "Heatmap method"),
    ("froc_score/red_lesions", "FROC score, red lesions"),
    ("froc_score/bright_lesions", "FROC score, bright lesions"),
    ("sensitivity_at_1fp/red_lesions", "Sens. @ 1 FP/image, red"),
    ("sensitivity_at_1fp/bright_lesions", "Sens. @ 1 FP/image, bright"),
    ("image_auc/red_lesions", "Lesion-type image AUC, red"),
    ("image_auc/bright_lesions", "Lesion-type image AUC, bright"),
    ("relevance_mass/red_lesions", "Relevance mass, red lesions"),
    ("relevance_mass/all_lesions", "Relevance mass, all lesions"),
    ("pointing_game/red_lesions", "Pointing game, red lesions"),
    ("deletion_auc", "Deletion AUC (↓)"),
    ("insertion_auc", "Insertion AUC (↑)"),
    ("seconds_per_image", "Time / image (s)"),
)


def json_safe(value: object) -> object:
    """Convert numpy scalars/arrays and tuples to JSON types; NaN and ±inf become None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


MAX_INLINE = 32
"""Lists longer than this leave `metrics.json` for `curves.csv`."""
CURVES_FILE = "curves.csv"
CURVE_COLUMNS = ("curve", "field", "index", "value")


def split_curves(values: object, path: str = "") -> tuple[object, list[tuple]]:
    """``values`` (JSON-safe) without its lists longer than `MAX_INLINE`, and those lists as
    `curves.csv` rows; a dict that held one gains ``curves_csv`` (its path) and ``points``."""
    if isinstance(values, list):
        pairs = [split_curves(v, f"{path}/{i}") for i, v in enumerate(values)]
        return [kept for kept, _ in pairs], [row for _, rows in pairs for row in rows]
    if not isinstance(values, dict):
        return values, []
    kept, rows, points = {}, [], 0
    for key, value in values.items():
        where = f"{path}/{key}" if path else str(key)
        if isinstance(value, list) and len(value) > MAX_INLINE:
            rows += [(path, key, index, item) for index, item in enumerate(value)]
            points = max(points, len(value))
            continue
        kept[key], inner = split_curves(value, where)
        rows += inner
    if points:
        kept.update(curves_csv=path, points=points)
    return kept, rows


def write_metrics(metrics_path: str, curves_path: str, payload: Mapping) -> dict:
    """Write ``payload`` as the summary `metrics.json` and its long lists as `curves.csv`
    (both atomically; the CSV first, so a summary never names curves that are not there).

    Returns
    -------
    The summary written.
    """
    summary, rows = split_curves(json_safe(payload))
    with open(f"{curves_path}.partial", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CURVE_COLUMNS)
        writer.writerows(rows)
    os.replace(f"{curves_path}.partial", curves_path)
    write_atomically(metrics_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def comparison_row(method: str, section: Mapping) -> dict:
    """One comparison-table row: ``method`` and the `COMPARISON_COLUMNS` values of a method
    section (`drscreen.evaluation.sections.method_section`), None where it has none."""
    return {"method": method, **{key: section.get(key) for key, _ in COMPARISON_COLUMNS[1:]}}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if 0 < abs(value) < 0.01 else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _summary_rows(metrics: Mapping) -> list[tuple[str, str]]:
    rows = []
    screening = metrics.get("screening", {})
    for task, title in (("referable_dr", "Referable DR"), ("any_dr", "Any DR")):
        entry = screening.get(task)
        if entry is None:
            continue
        low, high = entry["auc_ci"]
        level = round(100 * entry["ci_level"])
        rows.append(
            (f"{title} AUC", f"{_cell(entry['auc'])} ({level}% CI {_cell(low)}–{_cell(high)})")
        )
        for target, point in entry["operating_points"].items():
            rows.append(
                (
                    f"{title} @ val. sensitivity {target} (threshold {_cell(point['threshold'])})",
                    f"sens. {_cell(point['sensitivity'])}, spec. {_cell(point['specificity'])}, "
                    f"PPV {_cell(point['ppv'])}, NPV {_cell(point['npv'])}",
                )
            )
    if "kappa" in screening:
        kappa = screening["kappa"]
        thresholds = "/".join(f"{t:.2f}" for t in kappa["grade_thresholds"])
        rows.append(
            (
                "Quadratic weighted kappa",
                f"{_cell(kappa['quadratic_weighted_kappa'])} (thresholds {thresholds}; "
                f"{_cell(kappa['kappa_default_thresholds'])} at 0.5/1.5/2.5/3.5)",
            )
        )
    for task, entry in metrics.get("patients", {}).items():
        if isinstance(entry, Mapping):
            rows.append(
                (
                    f"Patient-level AUC, {task.replace('_', ' ')}",
                    f"max of eyes {_cell(entry['auc_max'])}, mean {_cell(entry['auc_mean'])}",
                )
            )
    if "expected_calibration_error" in metrics.get("calibration", {}):
        ece = metrics["calibration"]["expected_calibration_error"]
        rows.append(("Expected calibration error", _cell(ece)))
    rows += _gradability_rows(metrics.get("gradability", {}))
    methods = metrics.get("methods", {})
    main = next(iter(methods.values()), {})
    for target, entry in main.get("lesions", {}).items():
        if "froc_score" in entry:
            rows.append(
                (
                    f"FROC score, {target.replace('_', ' ')}"
                    + (" (a diagnostic, not a result)" if target in DIAGNOSTIC_TARGETS else ""),
                    f"{_cell(entry['froc_score'])} (sens. @ 1 FP/image "
                    f"{_cell(entry['sensitivity_at_fp']['1'])}, image AUC "
                    f"{_cell(entry.get('image_auc'))}, relevance mass "
                    f"{_cell(entry.get('relevance_mass'))})",
                )
            )
    return rows


def _skipped_lines(metrics: Mapping) -> list[str]:
    """One line per photograph refused, evaluated or validation, with its reason."""
    lines = []
    for part in ("evaluated", "validation"):
        for entry in (metrics.get(part) or {}).get("skipped", ()):
            lines.append(f"- {part}: `{entry['image']}`: {entry['reason']}")
    if not lines:
        return []
    return ["", "## Photographs skipped", "", *lines]


def _gradability_rows(section: Mapping) -> list[tuple[str, str]]:
    """The gradability gate's summary rows (`drscreen.evaluation.triage`)."""
    if not section:
        return []
    rows = []
    detection = section["detection"]
    if "auc" in detection:
        low, high = detection["auc_ci"]
        rows.append(
            (
                "Ungradable-detection AUC",
                f"{_cell(detection['auc'])} (CI {_cell(low)}–{_cell(high)}; "
                f"{detection['ungradable']} ungradable, {detection['gradable']} gradable)",
            )
        )
        rows.append(
            (
                f"Ungradable @ quality <= {_cell(section['threshold'])}",
                f"sens. {_cell(detection['sensitivity'])}, spec. {_cell(detection['specificity'])}",
            )
        )
    rows.append(("Photographs flagged ungradable", _cell(section["flagged_fraction"])))
    gradable = section["referable_dr_on_gradable"].get("referable_dr")
    if gradable is not None:
        low, high = gradable["auc_ci"]
        rows.append(
            ("Referable DR AUC, gradable images", f"{_cell(gradable['auc'])} (CI {_cell(low)}–"
             f"{_cell(high)})")
        )  # fmt: skip
    return rows


def _referral_lines(section: Mapping) -> list[str]:
    """The referral curves as tables (`drscreen.evaluation.referral`)."""
    if not section or "curves" not in section:
        return []
    lines = [
        "",
        "## Referral by uncertainty",
        "",
        f"The most uncertain images (test-time views {', '.join(section['views'])}) are "
        f"referred to a grader; figures on the {section['images']} gradable images kept, "
        f"decisions at the {section['operating_point']} threshold. AUC without referral: "
        f"{_cell(section['auc_plain'])} (view-averaged score {_cell(section['auc_view_mean'])}).",
    ]
    for name, curve in section["curves"].items():
        lines += ["", f"Uncertainty: {name.replace('_', ' ')}", ""]
        lines += _table(
            ("Referred", "Images kept", "AUC", "Accuracy"),
            list(
                zip(
                    [f"{round(100 * f)} %" for f in curve["referred_fraction"]],
                    curve["retained_images"],
                    curve["auc"],
                    curve["accuracy"],
                    strict=True,
                )
            ),
        )
    return lines


def write_report(
    out_dir: str,
    metrics: Mapping,
    figures: Mapping[str, str],
    comparison_rows: Sequence[Mapping] | None,
    context: Mapping[str, str],
    card: Sequence[str] = (),
) -> tuple[str, str]:
    """Write `metrics.json`, `curves.csv` and `report.md` into `out_dir`.

    Parameters
    ----------
    out_dir:
        Output folder, created if needed; figure paths are linked relative to it.
    metrics:
        Nested dict, by convention `drscreen.evaluation.model_evaluation.ModelEvaluation`'s
        (`screening`, `patients`, `calibration`, `methods`: the first method is the report's
        main heatmap); numpy values and non-finite floats are made JSON-safe.
    figures:
        Caption to PNG path.
    comparison_rows:
        Rows keyed like `COMPARISON_COLUMNS` (see `comparison_row`), or None.
    context:
        At least `dataset`, `model` and `command`.
    card:
        The evaluated model's card as Markdown lines
        (`drscreen.models.model_card.card_markdown`), shown first.

    Returns
    -------
    Paths of `metrics.json` and `report.md`.
    """
    missing = [key for key in ("dataset", "model", "command") if key not in context]
    if missing:
        raise ValueError(f"report context lacks {missing}")
    os.makedirs(out_dir, exist_ok=True)
    safe = json_safe(
        {"context": dict(context), "metrics": metrics, "comparison": list(comparison_rows or [])}
    )
    metrics_path = os.path.join(out_dir, "metrics.json")
    write_metrics(metrics_path, os.path.join(out_dir, CURVES_FILE), safe)

    lines = [
        f"# Evaluation of `{context['model']}` on {context['dataset']}",
        "",
        f"Command: `{context['command']}`",
        "",
    ]
    lines += [
        f"- {key}: {value}"
        for key, value in context.items()
        if key not in ("dataset", "model", "command")
    ]
    if card:
        lines += ["", *card]
    summary = _summary_rows(safe["metrics"])
    if summary:
        lines += ["", "## Summary", ""] + _table(("Metric", "Value"), summary)
    lines += _referral_lines(safe["metrics"].get("referral", {}))
    if comparison_rows:
        lines += ["", "## Heatmap methods compared", ""]
        lines += _table(
            [header for _, header in COMPARISON_COLUMNS],
            [[row.get(key) for key, _ in COMPARISON_COLUMNS] for row in safe["comparison"]],
        )
    lines += _skipped_lines(safe["metrics"])
    if figures:
        lines += ["", "## Figures", ""]
        for caption, path in figures.items():
            relative = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
            lines += [f"### {caption}", "", f"![{caption}]({relative})", ""]
    lines += [
        "",
        "Full numbers: [metrics.json](metrics.json), curve points: [curves.csv](curves.csv).",
    ]
    report_path = os.path.join(out_dir, "report.md")
    with open(report_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return metrics_path, report_path
