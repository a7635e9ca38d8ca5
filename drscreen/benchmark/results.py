"""The benchmark's tables: per-seed stage JSON -> ``results.json`` and ``results.md``.

Rows are (model, heatmap method): every recipe with every method, the shuffled-grade control,
each recipe randomised from the top (`drscreen.benchmark.sanity.CASCADE`), and the
pixel-supervised reference (its red map scored on red lesions, its bright map on bright ones).
Each figure is given per seed and as mean ± sd over seeds. A difference between two rows
*exceeds the seed spread* when it has the same sign on every seed and its mean is larger
than both rows' seed sd.

Model choice, both on validation: **mask-free** (what a graded archive allows) keeps the
recipes whose mean validation AUC reaches the best recipe's mean CI lower bound and takes
the one whose default-method heatmap is most flip-stable; the **oracle** takes the (recipe,
method) with the best validation FROC, a mask-based choice reported apart.
"""

import dataclasses
import json
import os
import platform
from pathlib import Path

import numpy as np

from drscreen.benchmark.config import BenchmarkConfig
from drscreen.benchmark.sanity import CASCADE

DEFAULT_METHOD = "sensitivity"
"""drscreen's default heatmap method (`drscreen.heatmaps`)."""

COLUMNS = (
    ("auc", "AUC"),
    ("froc_score/red_lesions", "FROC red"),
    ("froc_score/bright_lesions", "FROC bright"),
    ("sensitivity_at_1fp/red_lesions", "S@1 red"),
    ("sensitivity_at_8fp/red_lesions", "S@8 red"),
    ("sensitivity_at_1fp/bright_lesions", "S@1 bright"),
    ("sensitivity_at_8fp/bright_lesions", "S@8 bright"),
    ("image_auc/red_lesions", "img AUC red"),
    ("image_auc/bright_lesions", "img AUC bright"),
    ("relevance_mass/red_lesions", "mass red"),
    ("relevance_mass/all_lesions", "mass all"),
    ("pointing_game/red_lesions", "point red"),
    ("pointing_game/bright_lesions", "point bright"),
    ("ms_per_image", "ms/img"),
)
GOAL_FIGURES = ("froc_score/red_lesions", "froc_score/bright_lesions", "relevance_mass/all_lesions")
REFERENCE_SHARE = 0.7


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _figures(method: dict, auc: float | None) -> dict:
    row = {key: method.get(key) for key, _ in COLUMNS if "/" in key}
    row["auc"] = auc
    seconds = method.get("seconds_per_image")
    row["ms_per_image"] = 1000 * seconds if seconds is not None else None
    return row


def _reference_figures(methods: dict) -> dict:
    red, bright = methods["reference_red_lesions"], methods["reference_bright_lesions"]
    row = {key: None for key, _ in COLUMNS}
    for key, _ in COLUMNS:
        if key.endswith("/red_lesions"):
            row[key] = red.get(key)
        elif key.endswith("/bright_lesions"):
            row[key] = bright.get(key)
    row["ms_per_image"] = 1000 * red["seconds_per_image"]
    return row


def collect_rows(config: BenchmarkConfig, recipes: list[str]) -> dict[str, dict[int, dict]]:
    """Row name -> seed -> figures, from the stage JSON written so far."""
    rows: dict[str, dict[int, dict]] = {}
    for seed in config.seeds:
        folder = Path(config.out) / f"seed{seed}"
        for name in [*recipes, "control"]:
            measured = _read(folder / f"{name}.json")
            if measured is None:
                continue
            label = f"{config.control_recipe} on shuffled grades" if name == "control" else name
            for method, values in measured["test"]["methods"].items():
                rows.setdefault(f"{label} · {method}", {})[seed] = _figures(
                    values, measured["test"]["auc"]
                ) | {
                    "sigma": measured["validation"]["methods"][method]["sigma"],
                    "auc_ci": measured["test"]["auc_ci"],
                }
            randomised = _read(folder / f"{name}_randomised.json")
            for level in CASCADE if randomised else ():
                for method, values in randomised["levels"][level].items():
                    rows.setdefault(f"{name} randomised ({level}) · {method}", {})[seed] = _figures(
                        values, None
                    )
        measured = _read(folder / "reference.json")
        if measured is not None:
            rows.setdefault("pixel-supervised reference", {})[seed] = _reference_figures(
                measured["test"]["methods"]
            )
    return rows


def _stats(per_seed: dict[int, dict], key: str) -> tuple[float, float] | None:
    values = [v[key] for v in per_seed.values() if v.get(key) is not None]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def compare(rows: dict, first: str, second: str, key: str) -> dict | None:
    """Paired (per seed) difference first - second of one figure, and whether it exceeds the
    seed spread (same sign on every seed, |mean| above both rows' sd)."""
    seeds = [
        s
        for s in rows[first]
        if s in rows[second]
        and rows[first][s].get(key) is not None
        and rows[second][s].get(key) is not None
    ]
    if not seeds:
        return None
    differences = np.array([rows[first][s][key] - rows[second][s][key] for s in seeds])
    spread = max(_stats(rows[first], key)[1], _stats(rows[second], key)[1])
    same_sign = bool(np.all(differences > 0) or np.all(differences < 0))
    mean = float(differences.mean())
    return {
        "mean_difference": mean,
        "per_seed": differences.tolist(),
        "exceeds_seed_spread": same_sign and abs(mean) > spread and len(seeds) > 1,
    }


def _validation(config: BenchmarkConfig, recipes: list[str]) -> dict[str, list[dict]]:
    found = {}
    for name in recipes:
        seeds = [_read(Path(config.out) / f"seed{s}" / f"{name}.json") for s in config.seeds]
        found[name] = [s["validation"] for s in seeds if s is not None]
    return found


def select_models(config: BenchmarkConfig, recipes: list[str]) -> dict:
    """The mask-free and the oracle (mask-based) choice, both on validation."""
    studies = {name: v for name, v in _validation(config, recipes).items() if v}
    method = DEFAULT_METHOD if DEFAULT_METHOD in config.methods else config.methods[0]
    summary = {
        name: {
            "validation_auc": float(np.mean([v["auc"] for v in found])),
            "validation_auc_ci_low": float(np.mean([v["auc_ci"][0] for v in found])),
            "flip_stability": float(
                np.mean([v["methods"][method]["flip_stability"] for v in found])
            ),
            "validation_froc": {
                m: float(np.mean([v["methods"][m]["froc"] for v in found])) for m in config.methods
            },
        }
        for name, found in studies.items()
    }
    if not summary:
        return {}
    best_auc = max(summary, key=lambda name: summary[name]["validation_auc"])
    eligible = [
        name
        for name in summary
        if summary[name]["validation_auc"] >= summary[best_auc]["validation_auc_ci_low"]
    ]
    mask_free = max(eligible, key=lambda name: summary[name]["flip_stability"])
    oracle = max(
        ((name, m) for name in summary for m in config.methods),
        key=lambda pair: summary[pair[0]]["validation_froc"][pair[1]],
    )
    return {
        "method": method,
        "by_recipe": summary,
        "eligible_by_auc": eligible,
        "mask_free": f"{mask_free} · {method}",
        "oracle": f"{oracle[0]} · {oracle[1]}",
    }


def goals(rows: dict, config: BenchmarkConfig, recipes: list[str], default: str) -> dict:
    """The issue's goals for the default row (recipe · method), each with its figures."""
    plain = recipes[0]
    recipe, method = default.split(" · ")
    result: dict = {"default": default, "beats_post_hoc": {}, "reference_share": {}}
    for other_method in config.methods:
        other = f"{plain} · {other_method}"
        if other != default and other in rows:
            result["beats_post_hoc"][other] = {
                key: compare(rows, default, other, key) for key in GOAL_FIGURES
            }
    reference = rows.get("pixel-supervised reference")
    for key in GOAL_FIGURES[:2] if reference else ():
        ours, theirs = _stats(rows[default], key), _stats(reference, key)
        if ours and theirs and theirs[0] > 0:
            share = ours[0] / theirs[0]
            result["reference_share"][key] = {"share": share, "met": bool(share >= REFERENCE_SHARE)}
    randomised = f"{recipe} randomised (all) · {method}"
    if randomised in rows:
        result["randomisation"] = {
            key: compare(rows, default, randomised, key) for key in GOAL_FIGURES
        }
        drops = [result["randomisation"][key] for key in GOAL_FIGURES[:2]]
        result["passes_randomisation"] = all(
            d is not None and d["mean_difference"] > 0 and d["exceeds_seed_spread"] for d in drops
        )
    plain_row = f"{plain} · {method}"
    if plain_row in rows and plain_row != default:
        low = np.mean([v["auc_ci"][0] for v in rows[plain_row].values() if v.get("auc_ci")])
        result["auc_vs_plain"] = compare(rows, default, plain_row, "auc") | {
            "plain_ci_low": float(low),
            "within_plain_ci": bool(_stats(rows[default], "auc")[0] >= low),
        }
    return result


def _cell(stats: tuple[float, float] | None, percent: bool = False) -> str:
    if stats is None:
        return "–"
    mean, sd = stats
    return f"{mean:.1f} ± {sd:.1f}" if percent else f"{mean:.3f} ± {sd:.3f}"


def _markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [
        "# drscreen lesion benchmark",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        f"Wall time: {results['wall_seconds'] / 60:.1f} min this invocation; "
        f"{results['stage_seconds'] / 60:.1f} min summed over evaluation stages "
        f"(training in the run directories' logs)  ",
        f"Seeds: {', '.join(map(str, results['config']['seeds']))} (split and initialisation); "
        f"{results['config']['synth_n']} synthetic images at {results['config']['synth_size']} px, "
        f"lesion size ×{results['config']['synth_lesion_size']:g}; test images per seed: "
        f"{', '.join(map(str, results['test_images']))}.",
        "",
        "Candidates: local maxima of the heatmap smoothed by σ px, σ chosen per method and seed "
        "on the validation lesion masks (a benchmark protocol: graded archives have no masks).",
        "",
        "## Mean ± sd over seeds (test split)",
        "",
        "| model · method | " + " | ".join(title for _, title in COLUMNS) + " | σ |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for name, per_seed in rows.items():
        cells = [_cell(_stats(per_seed, key), key == "ms_per_image") for key, _ in COLUMNS]
        sigmas = sorted({v["sigma"] for v in per_seed.values() if "sigma" in v})
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {','.join(f'{s:g}' for s in sigmas) or '–'} |"
        )
    lines += [
        "",
        "## Per seed",
        "",
        "| model · method | seed | AUC [95% CI] | FROC red | FROC bright | mass all |",
        "|---|---|---|---|---|---|",
    ]
    for name, per_seed in rows.items():
        for seed, values in per_seed.items():
            ci = values.get("auc_ci")
            auc = (
                "–"
                if values.get("auc") is None
                else f"{values['auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            )
            figures = [
                values.get(k)
                for k in (
                    "froc_score/red_lesions",
                    "froc_score/bright_lesions",
                    "relevance_mass/all_lesions",
                )
            ]
            lines.append(
                f"| {name} | {seed} | {auc} | "
                + " | ".join("–" if f is None else f"{f:.3f}" for f in figures)
                + " |"
            )
    selection = results["selection"]
    if selection:
        lines += ["", "## Model choice on validation", ""]
        for name, summary in selection["by_recipe"].items():
            lines.append(
                f"- {name}: validation AUC {summary['validation_auc']:.3f} (CI low "
                f"{summary['validation_auc_ci_low']:.3f}), {selection['method']} flip stability "
                f"{summary['flip_stability']:.3f}, validation FROC "
                + ", ".join(f"{m} {v:.3f}" for m, v in summary["validation_froc"].items())
            )
        lines += [
            f"- **Mask-free choice** (AUC within the best's CI, then flip stability): "
            f"{selection['mask_free']}",
            f"- Oracle choice (validation lesion masks; not a result): {selection['oracle']}",
        ]
    goal = results["goals"]
    if goal:
        lines += ["", f"## Goals, for the default ({goal['default']})", ""]
        for other, figures in goal["beats_post_hoc"].items():
            for key, comparison in figures.items():
                if comparison:
                    lines.append(f"- minus {other}, {key}: {_difference(comparison)}")
        for key, share in goal["reference_share"].items():
            met = "met" if share["met"] else "not met"
            lines.append(
                f"- {key}: {100 * share['share']:.0f} % of the pixel-supervised reference "
                f"(goal ≥ {100 * REFERENCE_SHARE:.0f} %: {met})"
            )
        for key, comparison in (goal.get("randomisation") or {}).items():
            if comparison:
                lines.append(f"- minus its fully randomised copy, {key}: {_difference(comparison)}")
        if "passes_randomisation" in goal:
            verdict = "passes" if goal["passes_randomisation"] else "does not pass"
            lines.append(
                f"- randomisation check (both FROC scores drop beyond the spread): {verdict}"
            )
        comparison = goal.get("auc_vs_plain")
        if comparison:
            where = "within" if comparison["within_plain_ci"] else "below"
            lines.append(
                f"- referable-DR AUC minus the plain model's: {_difference(comparison)}; "
                f"{where} the plain model's CI (mean lower bound {comparison['plain_ci_low']:.3f})"
            )
    return "\n".join(lines) + "\n"


def _difference(comparison: dict) -> str:
    """``+0.123 (per seed +0.1, +0.2; exceeds the seed spread)``."""
    spread = "exceeds" if comparison["exceeds_seed_spread"] else "within"
    seeds = ", ".join(f"{d:+.3f}" for d in comparison["per_seed"])
    return f"{comparison['mean_difference']:+.3f} (per seed {seeds}; {spread} the seed spread)"


def _machine() -> str:
    processor = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores, {processor}, Python {platform.python_version()}"


def write_results(config: BenchmarkConfig, recipes: list[str], command: str, wall: float) -> dict:
    """Write ``results.json`` and ``results.md`` in the benchmark folder; return the results."""
    out = Path(config.out)
    rows = collect_rows(config, recipes)
    selection = select_models(config, recipes)
    default = selection.get("mask_free") if selection else None
    stage_seconds, test_images = 0.0, []
    for seed in config.seeds:
        for path in sorted((out / f"seed{seed}").glob("*.json")):
            stage_seconds += json.loads(path.read_text()).get("seconds", 0.0)
        first = _read(out / f"seed{seed}" / f"{recipes[0]}.json")
        if first:
            test_images.append(first["test"]["images"])
    results = {
        "command": command,
        "machine": _machine(),
        "wall_seconds": wall,
        "stage_seconds": stage_seconds,
        "config": dataclasses.asdict(config),
        "test_images": test_images,
        "rows": {name: {str(s): v for s, v in per_seed.items()} for name, per_seed in rows.items()},
        "selection": selection,
        "goals": goals(rows, config, recipes, default) if default in rows else {},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(_markdown({**results, "rows": rows}))
    return results
