"""The benchmark's tables from stage JSON: rows, seed statistics, comparisons, the default."""

import json
from pathlib import Path

import pytest

from drscreen.benchmark import results
from drscreen.benchmark.config import BenchmarkConfig

RECIPES = ["plain", "evidence"]
HEADLINE = "froc_score/all_lesions"


def _method(froc_all, froc_red=0.0, froc_bright=0.0, mass=0.1):
    return {
        HEADLINE: froc_all,
        "froc_score/red_lesions": froc_red,
        "froc_score/bright_lesions": froc_bright,
        "relevance_mass/all_lesions": mass,
        "froc_score/red_lesions_ignoring_bright": froc_red + 0.01,
        "seconds_per_image": 0.01,
    }


def _study(froc, separation=0.5, red=0.0, bright=0.0, sigma=2.0, stride=1):
    return {
        "sigma": sigma,
        "map_stride": stride,
        "froc": froc,
        "flip_stability": 0.5,
        "grade_separation": separation,
        "froc_by_sigma": {
            f"{sigma:g}": {"all_lesions": froc, "red_lesions": red, "bright_lesions": bright}
        },
    }


def _image_model(auc, methods, studies):
    return {
        "validation": {"auc": auc, "auc_ci": [auc - 0.05, auc + 0.02], "methods": studies},
        "test": {"images": 10, "auc": auc, "auc_ci": [auc - 0.05, auc + 0.02], "methods": methods},
    }


def _maps(names: dict[str, tuple[float, float, float]], separation=0.6) -> dict:
    """A map producer's stage: name -> (FROC all, red, bright) on test and validation."""
    return {
        "validation": {
            "methods": {n: _study(f[0], separation, f[1], f[2]) for n, f in names.items()}
        },
        "test": {"methods": {n: _method(*f) for n, f in names.items()}},
    }


def _write(folder: Path, name: str, values: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps(values))


@pytest.fixture
def benchmark(tmp_path):
    """Two seeds. plain: sensitivity (all 0.2 / 0.3), gradcam (0.05); its signed halves find red
    0.3 and bright 0.25 where the single map finds 0.1 and 0.15, and win on validation for red
    only. evidence: sensitivity 0.25 / 0.35, AUC 0.80 (below plain's CI). The reference: all
    0.5 / 0.6, red 0.4, bright 0.7. The student: all 0.4 / 0.45, grade separation 0.9; its
    control 0.05."""
    config = BenchmarkConfig(
        out=str(tmp_path),
        recipes=("configs/plain.flags", "configs/evidence.flags"),
        finetune_recipes=(),
        control_recipe="plain",
        seeds=(0, 1),
        methods=("sensitivity", "gradcam"),
        typed_methods=("sensitivity",),
    )
    for seed, gain in enumerate((0.0, 0.1)):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        plain = {
            "sensitivity": _method(0.2 + gain, 0.1, 0.15),
            "gradcam": _method(0.05),
            "sensitivity:decrease": _method(0.1, 0.3, 0.0),
            "sensitivity:increase": _method(0.1, 0.0, 0.25),
        }
        studies = {
            "sensitivity": _study(0.2, separation=0.7, red=0.12, bright=0.2),
            "gradcam": _study(0.05, separation=0.95, stride=32),
            "sensitivity:decrease": _study(0.3),
            "sensitivity:increase": _study(0.1),
        }
        _write(folder, "plain", _image_model(0.95, plain, studies))
        evidence = {m: _method(0.25 + gain) for m in ("sensitivity", "gradcam")}
        _write(
            folder,
            "evidence",
            _image_model(0.80, evidence, {m: _study(0.6, 0.99) for m in evidence}),
        )
        _write(
            folder,
            "control",
            _image_model(0.5, {m: _method(0.02) for m in plain}, studies),
        )
        _write(
            folder,
            "plain_randomised",
            {"levels": {level: {"sensitivity": _method(0.01)} for level in ("top half", "all")}},
        )
        reference = {
            "reference_all_lesions": (0.5 + gain, 0.3, 0.3),
            "reference_red_lesions": (0.2, 0.4, 0.0),
            "reference_bright_lesions": (0.2, 0.0, 0.7),
        }
        _write(folder, "reference", _maps(reference))
        few = {
            k.replace("reference", "few_shot"): (v[0] / 2, 0.1, 0.1) for k, v in reference.items()
        }
        _write(folder, "few_shot", _maps(few))
        _write(folder, "student", _maps({"lesions": (0.4 + gain / 2, 0.2, 0.3)}, separation=0.9))
        _write(folder, "student_control", _maps({"lesions": (0.05, 0.0, 0.0)}, separation=0.5))
    return config


def test_rows_take_each_figure_from_the_map_meant_for_it(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    assert set(rows) == {
        "plain · sensitivity",
        "plain · gradcam",
        "plain · sensitivity (type-specific)",
        "evidence · sensitivity",
        "evidence · gradcam",
        "plain on shuffled grades · sensitivity",
        "plain on shuffled grades · gradcam",
        "plain on shuffled grades · sensitivity (type-specific)",
        "plain randomised (top half) · sensitivity",
        "plain randomised (all) · sensitivity",
        results.REFERENCE_ROW,
        results.FEW_SHOT_ROW,
        results.STUDENT_ROW,
        results.STUDENT_CONTROL_ROW,
    }
    reference = rows[results.REFERENCE_ROW][1]
    assert reference[HEADLINE] == pytest.approx(0.6)  # the all-lesion map
    assert reference["froc_score/red_lesions"] == pytest.approx(0.4)  # the red map
    assert reference["froc_score/bright_lesions"] == pytest.approx(0.7)  # the bright map
    typed = rows["plain · sensitivity (type-specific)"][0]
    assert typed["froc_score/red_lesions"] == pytest.approx(0.3)  # decrease
    assert typed["froc_score/bright_lesions"] == pytest.approx(0.25)  # increase
    assert typed[HEADLINE] is None
    single = rows["plain · sensitivity"][1]
    assert single["froc_score/red_lesions_ignoring_bright"] == pytest.approx(0.11)
    assert single["grade_separation"] == pytest.approx(0.7)
    # % of the reference, seed by seed: 0.2 / 0.5 and 0.3 / 0.6
    assert rows["plain · sensitivity"][0]["reference_share"] == pytest.approx(40.0)
    assert single["reference_share"] == pytest.approx(50.0)
    student = rows[results.STUDENT_ROW][1]
    assert student[HEADLINE] == pytest.approx(0.45) and student["grade_separation"] == 0.9


def test_differences_exceed_the_seed_spread_only_when_consistent_and_large(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    student = results.compare(rows, results.STUDENT_ROW, "plain · sensitivity", HEADLINE)
    # per seed +0.20, +0.15; sds 0.035 and 0.071
    assert student["per_seed"] == pytest.approx([0.20, 0.15])
    assert student["exceeds_seed_spread"]
    evidence = results.compare(rows, "evidence · sensitivity", "plain · sensitivity", HEADLINE)
    assert evidence["per_seed"] == pytest.approx([0.05, 0.05])
    assert not evidence["exceeds_seed_spread"]  # 0.05 < the sd 0.071 of both rows


def test_per_type_variant_is_chosen_on_validation(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    chosen = results.per_type_variant(rows, benchmark, "plain")["sensitivity"]
    # red: type-specific 0.3 > single 0.12; bright: single 0.2 > type-specific 0.1
    assert chosen["red_lesions"]["row"] == "plain · sensitivity (type-specific)"
    assert chosen["bright_lesions"]["row"] == "plain · sensitivity"


def test_default_is_chosen_without_masks_the_oracle_with_them(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    choice = results.select_default(benchmark, rows, RECIPES, [])
    # evidence (AUC 0.80 < plain's CI low 0.90) is not eligible despite its 0.99 separation,
    # nor plain's Grad-CAM (0.95, but 32 px per map pixel)
    assert not choice["candidates"]["evidence · gradcam"]["eligible"]
    assert not choice["candidates"]["plain · gradcam"]["eligible"]
    assert choice["candidates"]["plain · sensitivity"]["eligible"]
    assert choice["mask_free"] == results.STUDENT_ROW  # separation 0.9 > sensitivity's 0.7
    assert choice["oracle"] == "evidence · sensitivity"  # validation FROC 0.6 (first of ties)


def test_goals_and_markdown(benchmark):
    written = results.write_results(benchmark, RECIPES, [], "python scripts/benchmark.py", 60.0)
    goals = written["goals"]
    assert goals["default"] == results.STUDENT_ROW
    share = goals["reference_share"][HEADLINE]
    assert share["share"] == pytest.approx(0.425 / 0.55) and share["met"]  # 77 % >= 70 %
    red = goals["reference_share"]["froc_score/red_lesions"]
    assert red["share"] == pytest.approx(0.2 / 0.4) and not red["met"]  # 50 % < 60 %
    assert goals["passes_shuffled_grades"]  # the student's control: 0.05 on both seeds
    assert goals["shuffled_grades"]["per_seed"] == pytest.approx([0.35, 0.40])
    assert goals["auc_vs_plain"]["within_plain_ci"]  # the student scores with the plain model
    assert set(goals["beats_post_hoc"]) == {"plain · sensitivity", "plain · gradcam"}
    out = Path(benchmark.out)
    markdown = (out / "results.md").read_text()
    assert "| lesion student | – | 0.425 ± 0.035 | 77.5 ± 3.5 |" in markdown
    assert "**Mask-free choice**" in markdown and "Oracle choice" in markdown
    assert "a diagnostic of the protocol, not a result" in markdown
    resumed = results.write_results(benchmark, RECIPES, [], "python scripts/benchmark.py", 30.0)
    assert resumed["wall_seconds"] == 90.0 and resumed["invocations"] == 2
