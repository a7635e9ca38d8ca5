"""The benchmark's tables: per-seed stage JSON -> ``results.json`` and ``results.md``.

Rows are (model · map). The headline figure is the **all-lesion FROC**: one map is asked to
show every lesion, a candidate on any lesion is a hit and only candidates on no lesion are
false positives — the question a grader asks of a map. Every map gets it, the references
too (their all-lesion map is the pixel-wise maximum of their group maps). Per lesion group,
two ways: the single map scored against each group (a peak on the other group's lesion is a
false positive), and, for `BenchmarkConfig.typed_methods`, type-specific maps (the signed
halves); which of the two is a method's per-type figure is chosen on validation (its
validation FROC for that group). The per-group FROC ignoring candidates on the other group's
lesions is a labelled diagnostic of that protocol, not a result.

Each figure is given per seed and as mean ± sd over seeds. A difference between two rows
*exceeds the seed spread* when it has the same sign on every seed and its mean is larger
than both rows' seed sd.

**The default map, chosen without masks** (rule fixed before the run): among the maps of the
image-supervised models (not the controls) and the lesion student, keep those fine enough to
place a lesion (at most `MAX_MAP_STRIDE` input pixels per map pixel: not the Grad-CAM of a
net whose last convolution sees 1/32 of the image) whose model's mean validation
referable-DR AUC reaches the plain model's mean validation CI lower bound (the student's
score is the plain model's), and take the map with the highest mean validation **grade
separation** (the AUC of its image score, any DR against grade 0: a map
that points at lesions is quiet on photographs without any). The **oracle** takes the best
validation all-lesion FROC, a mask-based choice reported apart, never as the result.
"""

import dataclasses
import json
import os
import platform
from pathlib import Path

import numpy as np

from drscreen.benchmark.config import MAX_MAP_STRIDE, BenchmarkConfig
from drscreen.benchmark.sanity import CASCADE

CONTROL = "control"
REFERENCE_ROW = "pixel-supervised reference (tuned)"
FEW_SHOT_ROW = "few-shot reference (validation masks only)"
STUDENT_ROW = "lesion student"
STUDENT_CONTROL_ROW = "lesion student of the shuffled-grade control"
TYPED = " (type-specific)"
HEADLINE = "froc_score/all_lesions"
HEADLINE_COLUMNS = (
    ("auc", "AUC"),
    ("froc_score/all_lesions", "FROC all"),
    ("reference_share", "% of ref."),
    ("sensitivity_at_1fp/all_lesions", "S@1 all"),
    ("sensitivity_at_8fp/all_lesions", "S@8 all"),
    ("relevance_mass/all_lesions", "mass all"),
    ("grade_separation", "grade sep. (val)"),
    ("ms_per_image", "ms/img"),
)
TYPE_COLUMNS = (
    ("froc_score/red_lesions", "FROC red"),
    ("froc_score/bright_lesions", "FROC bright"),
    ("sensitivity_at_1fp/red_lesions", "S@1 red"),
    ("sensitivity_at_8fp/red_lesions", "S@8 red"),
    ("sensitivity_at_1fp/bright_lesions", "S@1 bright"),
    ("sensitivity_at_8fp/bright_lesions", "S@8 bright"),
    ("froc_score/red_lesions_ignoring_bright", "diag. red"),
    ("froc_score/bright_lesions_ignoring_red", "diag. bright"),
)
FIGURES = tuple(key for key, _ in HEADLINE_COLUMNS + TYPE_COLUMNS if "/" in key)
GROUPS = ("red_lesions", "bright_lesions")
REFERENCE_SHARE = 0.7
TYPE_SHARE = 0.6


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _figures(test_method: dict, study: dict | None, auc: float | None) -> dict:
    row = {key: test_method.get(key) for key in FIGURES}
    row["auc"] = auc
    seconds = test_method.get("seconds_per_image")
    row["ms_per_image"] = 1000 * seconds if seconds is not None else None
    if study is not None:
        row["sigma"] = study["sigma"]
        row["map_stride"] = study.get("map_stride", 1)
        row["grade_separation"] = study.get("grade_separation")
        row["validation_froc"] = study["froc_by_sigma"][f"{study['sigma']:g}"]
    return row


def _typed_figures(methods: dict, studies: dict, method: str, auc: float | None) -> dict:
    """A typed method's row: each group's figures from its own half."""
    row: dict = {key: None for key in FIGURES} | {"auc": auc}
    validation_froc = {}
    for half, group in (("decrease", "red_lesions"), ("increase", "bright_lesions")):
        name = f"{method}:{half}"
        for key in FIGURES:
            if key.endswith(f"/{group}"):
                row[key] = methods[name].get(key)
        validation_froc[group] = studies[name]["froc"]
    row["validation_froc"] = validation_froc
    return row


def _map_producer_rows(measured: dict, names: dict[str, str]) -> dict:
    """A reference's or student's row. ``names``: lesion target -> the map scored for it (a
    reference has one per group and one for all lesions); a producer with a single map
    (``{"all_lesions": name}``) gives every figure from it."""
    methods, studies = measured["test"]["methods"], measured["validation"]["methods"]
    headline = names["all_lesions"]
    row: dict = {"auc": None, "validation_froc": {}}
    for key in FIGURES:
        name = headline if len(names) == 1 else names.get(key.split("/", 1)[1])
        row[key] = methods[name].get(key) if name else None
    for target, name in names.items():
        row["validation_froc"][target] = studies[name]["froc"]
    if len(names) == 1:
        row["validation_froc"] = studies[headline]["froc_by_sigma"][
            f"{studies[headline]['sigma']:g}"
        ]
    row["grade_separation"] = studies[headline].get("grade_separation")
    row["sigma"] = studies[headline]["sigma"]
    row["ms_per_image"] = 1000 * methods[headline]["seconds_per_image"]
    return row


def _reference_row(measured: dict, prefix: str) -> dict:
    return _map_producer_rows(
        measured,
        {
            "all_lesions": f"{prefix}_all_lesions",
            "red_lesions": f"{prefix}_red_lesions",
            "bright_lesions": f"{prefix}_bright_lesions",
        },
    )


def collect_rows(
    config: BenchmarkConfig, recipes: list[str], finetunes: list[str] = ()
) -> dict[str, dict[int, dict]]:
    """Row name -> seed -> figures, from the stage JSON written so far."""
    rows: dict[str, dict[int, dict]] = {}
    for seed in config.seeds:
        folder = Path(config.out) / f"seed{seed}"
        for name in [*recipes, *finetunes, CONTROL]:
            measured = _read(folder / f"{name}.json")
            if measured is None:
                continue
            label = f"{config.control_recipe} on shuffled grades" if name == CONTROL else name
            auc, methods = measured["test"]["auc"], measured["test"]["methods"]
            studies = measured["validation"]["methods"]
            for method in config.methods:
                rows.setdefault(f"{label} · {method}", {})[seed] = _figures(
                    methods[method], studies[method], auc
                ) | {"auc_ci": measured["test"]["auc_ci"]}
            for method in config.typed_methods:
                if f"{method}:decrease" in methods:
                    rows.setdefault(f"{label} · {method}{TYPED}", {})[seed] = _typed_figures(
                        methods, studies, method, auc
                    )
            randomised = _read(folder / f"{name}_randomised.json")
            for level in CASCADE if randomised else ():
                for method, values in randomised["levels"][level].items():
                    rows.setdefault(f"{name} randomised ({level}) · {method}", {})[seed] = _figures(
                        values, None, None
                    )
        for stage, row, prefix in (
            ("reference", REFERENCE_ROW, "reference"),
            ("few_shot", FEW_SHOT_ROW, "few_shot"),
        ):
            measured = _read(folder / f"{stage}.json")
            if measured is not None:
                rows.setdefault(row, {})[seed] = _reference_row(measured, prefix)
        for stage, row in (("student", STUDENT_ROW), ("student_control", STUDENT_CONTROL_ROW)):
            measured = _read(folder / f"{stage}.json")
            if measured is not None and "skipped" not in measured:
                rows.setdefault(row, {})[seed] = _map_producer_rows(
                    measured, {"all_lesions": "lesions"}
                )
    _add_reference_share(rows)
    return rows


def skipped_stages(config: BenchmarkConfig) -> dict[str, str]:
    """``seed<S>/<stage>`` -> why that stage measured nothing (a student without pseudo-lesion)."""
    skipped = {}
    for seed in config.seeds:
        for stage in ("student", "student_control"):
            measured = _read(Path(config.out) / f"seed{seed}" / f"{stage}.json")
            if measured is not None and "skipped" in measured:
                skipped[f"seed{seed}/{stage}"] = measured["skipped"]
    return skipped


def _add_reference_share(rows: dict) -> None:
    """Each row's all-lesion FROC as a percentage of the tuned reference's (same seed)."""
    reference = rows.get(REFERENCE_ROW, {})
    for per_seed in rows.values():
        for seed, values in per_seed.items():
            theirs = (reference.get(seed) or {}).get(HEADLINE)
            ours = values.get(HEADLINE)
            values["reference_share"] = 100 * ours / theirs if ours is not None and theirs else None


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


def _validation_auc(config: BenchmarkConfig, name: str) -> tuple[float, float] | None:
    """Mean validation AUC and mean CI lower bound of one image model over seeds."""
    found = [_read(Path(config.out) / f"seed{s}" / f"{name}.json") for s in config.seeds]
    found = [f["validation"] for f in found if f is not None]
    if not found:
        return None
    return float(np.mean([f["auc"] for f in found])), float(
        np.mean([f["auc_ci"][0] for f in found])
    )


def per_type_variant(rows: dict, config: BenchmarkConfig, model: str) -> dict[str, dict]:
    """Per typed method of ``model`` and group: the single map or the type-specific one,
    whichever has the higher mean validation FROC for that group."""
    chosen: dict[str, dict] = {}
    for method in config.typed_methods:
        single, typed = f"{model} · {method}", f"{model} · {method}{TYPED}"
        if single not in rows or typed not in rows:
            continue
        chosen[method] = {}
        for group in GROUPS:
            means = {
                row: float(np.mean([v["validation_froc"][group] for v in rows[row].values()]))
                for row in (single, typed)
            }
            chosen[method][group] = {"row": max(means, key=means.get), "validation_froc": means}
    return chosen


def select_default(
    config: BenchmarkConfig, rows: dict, recipes: list[str], finetunes: list[str]
) -> dict:
    """The mask-free default map and the oracle (mask-based), both on validation."""
    plain = recipes[0]
    plain_auc = _validation_auc(config, plain)
    if plain_auc is None:
        return {}
    candidates: dict[str, dict] = {}
    for model in [*recipes, *finetunes]:
        auc = _validation_auc(config, model)
        if auc is None:
            continue
        for method in config.methods:
            row = f"{model} · {method}"
            if row in rows:
                candidates[row] = {"validation_auc": auc[0]}
    if STUDENT_ROW in rows:
        candidates[STUDENT_ROW] = {"validation_auc": plain_auc[0]}
    for row, entry in candidates.items():
        strides = [v.get("map_stride", 1) for v in rows[row].values()]
        entry["map_stride"] = max(strides)
        entry["grade_separation"] = _stats(rows[row], "grade_separation")
        entry["validation_froc"] = float(
            np.mean([v["validation_froc"]["all_lesions"] for v in rows[row].values()])
        )
        entry["eligible"] = (
            entry["validation_auc"] >= plain_auc[1] and entry["map_stride"] <= MAX_MAP_STRIDE
        )
    eligible = [r for r, e in candidates.items() if e["eligible"] and e["grade_separation"]]
    if not eligible:
        return {}
    mask_free = max(eligible, key=lambda r: candidates[r]["grade_separation"][0])
    oracle = max(candidates, key=lambda r: candidates[r]["validation_froc"])
    return {
        "plain_validation_auc": plain_auc[0],
        "plain_validation_ci_low": plain_auc[1],
        "candidates": candidates,
        "mask_free": mask_free,
        "oracle": oracle,
    }


def _post_hoc_rows(rows: dict, config: BenchmarkConfig, plain: str) -> list[str]:
    return [f"{plain} · {m}" for m in config.methods if f"{plain} · {m}" in rows]


def _default_model(default: str) -> str:
    return default.split(" · ")[0] if " · " in default else default


def goals(
    rows: dict,
    config: BenchmarkConfig,
    recipes: list[str],
    default: str,
    chosen_types: dict,
    skipped: dict[str, str] | None = None,
) -> dict:
    """The issue's goals for the default row, each with its figures."""
    plain = recipes[0]
    result: dict = {"default": default, "beats_post_hoc": {}, "reference_share": {}}
    for other in _post_hoc_rows(rows, config, plain):
        if other != default:
            result["beats_post_hoc"][other] = compare(rows, default, other, HEADLINE)
    reference = rows.get(REFERENCE_ROW)
    if reference:
        shares = {HEADLINE: (default, REFERENCE_SHARE)}
        for group in GROUPS:
            key = f"froc_score/{group}"
            row = default
            method = default.split(" · ")[-1]
            if method in chosen_types:
                row = chosen_types[method][group]["row"]
            shares[key] = (row, TYPE_SHARE)
        for key, (row, aim) in shares.items():
            ours, theirs = _stats(rows[row], key), _stats(reference, key)
            if ours and theirs and theirs[0] > 0:
                share = ours[0] / theirs[0]
                result["reference_share"][key] = {
                    "row": row,
                    "share": share,
                    "aim": aim,
                    "met": bool(share >= aim),
                }
    model = _default_model(default)
    method = default.split(" · ")[-1]
    randomised = f"{model} randomised (all) · {method}"
    if randomised in rows:
        drop = compare(rows, default, randomised, HEADLINE)
        result["randomisation"] = drop
        result["passes_randomisation"] = bool(
            drop and drop["mean_difference"] > 0 and drop["exceeds_seed_spread"]
        )
    control = (
        STUDENT_CONTROL_ROW
        if default == STUDENT_ROW
        else f"{config.control_recipe} on shuffled grades · {method}"
    )
    if control in rows:
        drop = compare(rows, default, control, HEADLINE)
        result["shuffled_grades"] = drop
        result["passes_shuffled_grades"] = bool(
            drop and drop["mean_difference"] > 0 and drop["exceeds_seed_spread"]
        )
    elif default == STUDENT_ROW and skipped:
        notes = {k: v for k, v in skipped.items() if k.endswith("/student_control")}
        if len(notes) == len(config.seeds):  # no student could learn from shuffled grades
            result["shuffled_grades_note"] = notes
            result["passes_shuffled_grades"] = True
    plain_row = f"{plain} · {config.methods[0]}"
    score_row = plain_row if default == STUDENT_ROW else default
    if plain_row in rows and score_row in rows:
        low = np.mean([v["auc_ci"][0] for v in rows[plain_row].values() if v.get("auc_ci")])
        mean = _stats(rows[score_row], "auc")
        result["auc_vs_plain"] = {
            "auc": mean[0] if mean else None,
            "plain_ci_low": float(low),
            "within_plain_ci": bool(mean and mean[0] >= low),
        }
    return result


def _cell(stats: tuple[float, float] | None, digits: int = 3) -> str:
    if stats is None:
        return "–"
    mean, sd = stats
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _digits(key: str) -> int:
    return 1 if key in ("ms_per_image", "reference_share") else 3


def _table(rows: dict, columns: tuple, names: list[str], sigma: bool) -> list[str]:
    header = "| model · map | " + " | ".join(title for _, title in columns)
    lines = [header + (" | σ |" if sigma else " |"), "|---" * (len(columns) + 1 + sigma) + "|"]
    for name in names:
        per_seed = rows[name]
        cells = [_cell(_stats(per_seed, key), _digits(key)) for key, _ in columns]
        line = f"| {name} | " + " | ".join(cells)
        if sigma:
            sigmas = sorted({v["sigma"] for v in per_seed.values() if v.get("sigma") is not None})
            line += f" | {','.join(f'{s:g}' for s in sigmas) or '–'}"
        lines.append(line + " |")
    return lines


def _is_sanity(name: str) -> bool:
    return "randomised" in name or "shuffled" in name or name == STUDENT_CONTROL_ROW


def _markdown(results: dict) -> str:
    rows = results["rows"]
    config = results["config"]
    results_rows = [n for n in rows if not _is_sanity(n) and not n.endswith(TYPED)]
    lines = [
        "# drscreen lesion benchmark",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        f"Wall time: {results['wall_seconds'] / 60:.1f} min over {results['invocations']} "
        f"invocation(s) of the command (a resumed run adds up its parts; the first one also "
        f"generated the images)  ",
        f"Seeds: {', '.join(map(str, config['seeds']))} (split and initialisation); "
        f"{config['synth_n']} synthetic images at {config['synth_size']} px, "
        f"lesion size ×{config['synth_lesion_size']:g}; test images per seed: "
        f"{', '.join(map(str, results['test_images']))}.",
        "",
        "Candidates: local maxima of each map smoothed by σ px, σ chosen per map and seed on the "
        "validation lesion masks for the map's own target (a benchmark protocol: graded "
        "archives have no masks). A candidate within 2 px of a lesion hits it.",
        "",
        "## All lesions: does the map show the lesions? (mean ± sd over seeds, test split)",
        "",
        "A candidate on any lesion is a hit; only candidates on no lesion are false positives. "
        "`% of ref.`: all-lesion FROC as a share of the tuned pixel-supervised reference's, "
        "seed by seed. `grade sep. (val)`: validation AUC of the map's image score for any DR "
        "against grade 0 (mask-free).",
        "",
        *_table(rows, HEADLINE_COLUMNS, results_rows, sigma=True),
        "",
        "## Per lesion group, two ways",
        "",
        "Single map: one map scored against each group (a peak on the other group's lesion "
        "counts as a false positive). Type-specific: the signed halves of the input-space "
        "signal (brightening a red lesion lowers the grade: `decrease`; a bright one raises "
        "it: `increase`). `diag.`: the single map's FROC ignoring candidates that hit only the "
        "other group's lesions — a diagnostic of the protocol, not a result.",
        "",
        *_table(rows, TYPE_COLUMNS, [n for n in rows if not _is_sanity(n)], sigma=False),
    ]
    chosen = results.get("per_type_variant") or {}
    if chosen:
        lines += ["", "Per-type figure of each typed method, chosen on validation FROC:", ""]
        for model, methods in chosen.items():
            for method, groups in methods.items():
                for group, entry in groups.items():
                    froc = ", ".join(f"{r}: {v:.3f}" for r, v in entry["validation_froc"].items())
                    lines.append(f"- {model} · {method}, {group}: **{entry['row']}** ({froc})")
    lines += [
        "",
        "## Sanity checks (test split)",
        "",
        *_table(
            rows,
            HEADLINE_COLUMNS[1:2] + TYPE_COLUMNS[:2],
            [n for n in rows if _is_sanity(n)],
            False,
        ),
    ]
    for stage, reason in (results.get("skipped_stages") or {}).items():
        lines.append(f"- {stage}: not trained: {reason}")
    lines += _tuning_lines(results.get("reference_tuning"))
    lines += _sweep_lines(results.get("heatmap_aware_sweep"))
    lines += _per_seed_lines(rows)
    lines += _selection_lines(results.get("selection") or {})
    lines += _goal_lines(results.get("goals") or {})
    return "\n".join(lines) + "\n"


def _tuning_lines(tuning: dict | None) -> list[str]:
    if not tuning:
        return []
    lines = [
        "",
        "## The reference, tuned on validation masks (first seed)",
        "",
        f"Rule: {tuning['rule']}.",
        "",
        "| configuration | validation all-lesion FROC by epochs | best |",
        "|---|---|---|",
    ]
    for trial in tuning["trials"]:
        curve = ", ".join(f"{e}: {v['froc']:.3f}" for e, v in trial["curve"].items())
        lines.append(f"| {trial['label']} | {curve} | {trial['froc']:.3f} |")
    chosen = tuning["chosen"]
    curve = ", ".join(f"{e}: {v['froc']:.3f}" for e, v in chosen["curve"].items())
    flat = (
        "it stopped improving"
        if tuning["flattened"]
        else "it was still improving at the longest schedule: a lower bound of this budget"
    )
    lines += [
        f"| **{chosen['label']}, trained longer** | {curve} | {chosen['froc']:.3f} |",
        "",
        f"Chosen: **{chosen['label']}, {chosen['config']['epochs']} epochs** (validation FROC "
        f"{chosen['froc']:.3f}; {flat}). The few-shot reference trains this configuration on "
        "the validation masks only, as many passes. Seeds other than the first use the chosen "
        "configuration; part of the first seed's validation images are their test images, "
        "which can only favour the reference (the denominator of every share).",
    ]
    return lines


def _sweep_lines(sweep: dict | None) -> list[str]:
    if not sweep:
        return []
    lines = [
        "",
        "## Heatmap-aware training: λ chosen without masks (first seed)",
        "",
        f"Rule: {sweep['rule']}. Plain model: validation AUC {sweep['plain_validation_auc']:.3f}, "
        f"CI lower bound {sweep['plain_validation_ci_low']:.3f}.",
        "",
    ]
    for name, entry in sweep["recipes"].items():
        trials = ", ".join(f"λ {t['lambda']:g}: {t['validation_auc']:.3f}" for t in entry["trials"])
        kept = "" if entry["auc_kept"] else " (no λ kept the AUC: the smallest)"
        lines.append(f"- {name} ({entry['penalty']}): {trials} → λ = **{entry['chosen']:g}**{kept}")
    return lines


def _per_seed_lines(rows: dict) -> list[str]:
    lines = [
        "",
        "## Per seed",
        "",
        "| model · map | seed | AUC [95% CI] | FROC all | FROC red | FROC bright |",
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
                for k in (HEADLINE, "froc_score/red_lesions", "froc_score/bright_lesions")
            ]
            lines.append(
                f"| {name} | {seed} | {auc} | "
                + " | ".join("–" if f is None else f"{f:.3f}" for f in figures)
                + " |"
            )
    return lines


def _selection_lines(selection: dict) -> list[str]:
    if not selection:
        return []
    lines = [
        "",
        "## The default map, chosen on validation",
        "",
        f"Plain model: validation AUC {selection['plain_validation_auc']:.3f}, CI lower bound "
        f"{selection['plain_validation_ci_low']:.3f}.",
        "",
        "| map | validation AUC | px per map px | eligible | grade separation | "
        "validation FROC all (oracle) |",
        "|---|---|---|---|---|---|",
    ]
    for row, entry in selection["candidates"].items():
        lines.append(
            f"| {row} | {entry['validation_auc']:.3f} | {entry['map_stride']} | "
            f"{'yes' if entry['eligible'] else 'no'} | {_cell(entry['grade_separation'])} | "
            f"{entry['validation_froc']:.3f} |"
        )
    lines += [
        "",
        f"- **Mask-free choice** (a map of at most {MAX_MAP_STRIDE} px per map pixel whose AUC "
        f"reaches the plain model's CI lower bound, then the highest grade separation): "
        f"**{selection['mask_free']}**",
        f"- Oracle choice (validation lesion masks; not a result): {selection['oracle']}",
    ]
    return lines


def _goal_lines(goal: dict) -> list[str]:
    if not goal:
        return []
    lines = ["", f"## Goals, for the default ({goal['default']})", ""]
    for key, share in goal["reference_share"].items():
        met = "met" if share["met"] else "not met"
        lines.append(
            f"- {key} ({share['row']}): {100 * share['share']:.0f} % of the tuned reference "
            f"(goal ≥ {100 * share['aim']:.0f} %: {met})"
        )
    for other, comparison in goal["beats_post_hoc"].items():
        if comparison:
            lines.append(f"- minus {other}, {HEADLINE}: {_difference(comparison)}")
    for check, label in (
        ("randomisation", "its fully randomised copy"),
        ("shuffled_grades", "its shuffled-grade control"),
    ):
        comparison = goal.get(check)
        if comparison:
            verdict = "passes" if goal[f"passes_{check}"] else "does not pass"
            lines.append(f"- minus {label}, {HEADLINE}: {_difference(comparison)}: {verdict}")
    auc = goal.get("auc_vs_plain")
    if auc and auc["auc"] is not None:
        where = "within" if auc["within_plain_ci"] else "below"
        lines.append(
            f"- referable-DR AUC {auc['auc']:.3f}: {where} the plain model's CI (mean lower "
            f"bound {auc['plain_ci_low']:.3f})"
        )
    return lines


def _difference(comparison: dict) -> str:
    """``+0.123 (per seed +0.1, +0.2; exceeds the seed spread)``."""
    spread = "exceeds" if comparison["exceeds_seed_spread"] else "within"
    seeds = ", ".join(f"{d:+.3f}" for d in comparison["per_seed"])
    return f"{comparison['mean_difference']:+.3f} (per seed {seeds}; {spread} the seed spread)"


def _machine() -> str:
    processor = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores, {processor}, Python {platform.python_version()}"


def write_results(
    config: BenchmarkConfig,
    recipes: list[str],
    finetunes: list[str],
    command: str,
    wall: float,
) -> dict:
    """Write ``results.json`` and ``results.md`` in the benchmark folder; return the results."""
    out = Path(config.out)
    previous = _read(out / "results.json") or {}
    invocations = previous.get("invocations", 1 if previous else 0) + 1
    wall += previous.get("wall_seconds", 0.0)
    rows = collect_rows(config, recipes, finetunes)
    skipped = skipped_stages(config)
    selection = select_default(config, rows, recipes, finetunes)
    default = selection.get("mask_free")
    chosen_types = {
        model: per_type_variant(rows, config, model)
        for model in [*recipes, *finetunes]
        if per_type_variant(rows, config, model)
    }
    default_types = chosen_types.get(_default_model(default or ""), {})
    test_images = []
    for seed in config.seeds:
        first = _read(out / f"seed{seed}" / f"{recipes[0]}.json")
        if first:
            test_images.append(first["test"]["images"])
    results = {
        "command": command,
        "machine": _machine(),
        "wall_seconds": wall,
        "invocations": invocations,
        "config": dataclasses.asdict(config),
        "test_images": test_images,
        "rows": {name: {str(s): v for s, v in per_seed.items()} for name, per_seed in rows.items()},
        "per_type_variant": chosen_types,
        "reference_tuning": _read(out / "reference_tuning.json"),
        "heatmap_aware_sweep": _read(out / "heatmap_aware_sweep.json"),
        "selection": selection,
        "skipped_stages": skipped,
        "goals": goals(rows, config, recipes, default, default_types, skipped)
        if default in rows
        else {},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(_markdown({**results, "rows": rows}))
    return results
