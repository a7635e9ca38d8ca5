"""The benchmark's tables from stage JSON: rows, seed statistics, comparisons, model choice."""

import json
from pathlib import Path

import pytest

from drscreen.benchmark import results
from drscreen.benchmark.config import BenchmarkConfig

RECIPES = ["plain", "evidence"]


def _method(froc_red, froc_bright, mass=0.1):
    return {
        "froc_score/red_lesions": froc_red,
        "froc_score/bright_lesions": froc_bright,
        "relevance_mass/all_lesions": mass,
        "seconds_per_image": 0.01,
    }


def _image_model(auc, methods, stability, val_froc):
    return {
        "validation": {
            "auc": auc,
            "auc_ci": [auc - 0.05, auc + 0.02],
            "methods": {
                m: {"sigma": 2.0, "froc": val_froc[m], "flip_stability": stability} for m in methods
            },
        },
        "test": {"images": 10, "auc": auc, "auc_ci": [auc - 0.05, auc + 0.02], "methods": methods},
        "seconds": 1.0,
    }


@pytest.fixture
def benchmark(tmp_path):
    """Two seeds: evidence beats plain's sensitivity on red on both seeds (by 0.10 and 0.20),
    ties it on bright up to noise (+0.01, -0.01); the reference finds twice as much."""
    config = BenchmarkConfig(
        out=str(tmp_path),
        recipes=("configs/plain.flags", "configs/evidence.flags"),
        control_recipe="evidence",
        seeds=(0, 1),
        methods=("sensitivity", "gradcam"),
    )
    for seed, (gain, bright) in enumerate(((0.10, 0.01), (0.20, -0.01))):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        plain = {"sensitivity": _method(0.1, 0.2), "gradcam": _method(0.0, 0.05)}
        evidence = {"sensitivity": _method(0.1 + gain, 0.2 + bright), "gradcam": _method(0.1, 0.1)}
        (folder / "plain.json").write_text(
            json.dumps(
                _image_model(
                    0.95, plain, stability=0.5, val_froc={"sensitivity": 0.1, "gradcam": 0.0}
                )
            )
        )
        (folder / "evidence.json").write_text(
            json.dumps(
                _image_model(
                    0.94, evidence, stability=0.8, val_froc={"sensitivity": 0.3, "gradcam": 0.4}
                )
            )
        )
        reference = {
            "reference_red_lesions": _method(0.4 + gain, 0.0),
            "reference_bright_lesions": _method(0.0, 0.4),
        }
        (folder / "reference.json").write_text(json.dumps({"test": {"methods": reference}}))
    return config


def test_rows_hold_every_seed_and_the_reference_splits_its_maps(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    assert set(rows) == {
        "plain · sensitivity",
        "plain · gradcam",
        "evidence · sensitivity",
        "evidence · gradcam",
        "pixel-supervised reference",
    }
    assert rows["evidence · sensitivity"][1]["froc_score/red_lesions"] == pytest.approx(0.3)
    assert rows["evidence · sensitivity"][0]["sigma"] == 2.0
    reference = rows["pixel-supervised reference"][0]
    assert reference["froc_score/red_lesions"] == pytest.approx(0.5)  # from the red map
    assert reference["froc_score/bright_lesions"] == pytest.approx(0.4)  # from the bright map
    assert reference["ms_per_image"] == pytest.approx(10.0)


def test_differences_exceed_the_seed_spread_only_when_consistent_and_large(benchmark):
    rows = results.collect_rows(benchmark, RECIPES)
    red = results.compare(
        rows, "evidence · sensitivity", "plain · sensitivity", "froc_score/red_lesions"
    )
    # per seed +0.10, +0.20; sd of evidence's red FROC over seeds = 0.0707 < 0.15
    assert red["per_seed"] == pytest.approx([0.10, 0.20])
    assert red["mean_difference"] == pytest.approx(0.15) and red["exceeds_seed_spread"]
    bright = results.compare(
        rows, "evidence · sensitivity", "plain · sensitivity", "froc_score/bright_lesions"
    )
    assert bright["mean_difference"] == pytest.approx(0.0) and not bright["exceeds_seed_spread"]


def test_mask_free_choice_uses_auc_and_stability_the_oracle_uses_masks(benchmark):
    choice = results.select_models(benchmark, RECIPES)
    # evidence's mean validation AUC 0.94 >= plain's CI lower bound 0.90; more flip-stable
    assert choice["eligible_by_auc"] == ["plain", "evidence"]
    assert choice["mask_free"] == "evidence · sensitivity"
    assert choice["oracle"] == "evidence · gradcam"  # best validation FROC (0.4)


def test_goals_and_markdown(benchmark):
    written = results.write_results(benchmark, RECIPES, "python scripts/benchmark.py", 60.0)
    goals = written["goals"]
    assert goals["default"] == "evidence · sensitivity"
    share = goals["reference_share"]["froc_score/red_lesions"]
    assert share["share"] == pytest.approx(0.25 / 0.55) and not share["met"]
    assert goals["auc_vs_plain"]["mean_difference"] == pytest.approx(-0.01)
    assert goals["auc_vs_plain"]["within_plain_ci"]  # 0.94 >= 0.95 - 0.05
    out = Path(benchmark.out)
    markdown = (out / "results.md").read_text()
    assert "| evidence · sensitivity | 0.940 ± 0.000 | 0.250 ± 0.071 |" in markdown
    assert "Mask-free choice" in markdown and "Oracle choice" in markdown
    assert json.loads((out / "results.json").read_text())["command"] == (
        "python scripts/benchmark.py"
    )
