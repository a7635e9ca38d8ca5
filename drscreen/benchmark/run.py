"""The lesion benchmark, stage by stage: train, study on validation, measure on test.

For each seed (one patient split and one initialisation):

1. every recipe is trained by `drscreen.training.run` in ``OUT/seed<S>/<recipe>/`` (all on
   ``OUT/data``, generated once; the seed's recipes must hold out the same patients);
2. each trained model: every heatmap method is studied on validation
   (`drscreen.benchmark.validation`: σ, validation FROC, flip stability), then measured on test
   by `evaluate_model` with each method's σ -> ``<recipe>.json``;
3. the Adebayo checks: each trained model with its weights randomised from the top
   (`drscreen.benchmark.sanity`, the trained model's σ) -> ``<recipe>_randomised.json``, and
   ``control_recipe`` trained on shuffled grades and measured like the others -> ``control.json``;
4. the pixel-supervised reference (`drscreen.benchmark.reference`) -> ``reference.json``;
5. for the first seed, ``OUT/gallery_seed<S>.png``: a few test photographs under every model,
   method and the reference (`drscreen.benchmark.gallery`), to look at before trusting a figure.

Every stage's JSON is written atomically when the stage ends and a stage whose JSON exists
is skipped, so a killed benchmark continues where it stopped (an interrupted training resumes
from its checkpoint). `drscreen.benchmark.results` turns the JSON into the tables.
"""

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np

from drscreen.benchmark import gallery, reference, sanity, validation
from drscreen.benchmark.config import BenchmarkConfig
from drscreen.benchmark.results import write_results
from drscreen.data.sources import split_source
from drscreen.data.splits import SPLITS, Splits
from drscreen.evaluation import screening
from drscreen.evaluation.model_evaluation import evaluate_model
from drscreen.evaluation.runner import (
    HeatmapFunction,
    RunnerConfig,
    ScoreFunction,
    heatmap_function,
    run,
    score_function,
)
from drscreen.evaluation.sections import method_summary
from drscreen.models.runs import RunDirectory, load_model, model_input_size
from drscreen.training import run as training
from drscreen.training.config import TrainConfig

CONTROL = "control"
REFERENCE = "reference"


def _log(message: str) -> None:
    print(f"drscreen.benchmark: {message}", file=sys.stderr, flush=True)


def write_json(path: Path, values: dict) -> None:
    """Write ``values`` to ``path`` atomically (a killed write leaves no partial stage)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(values, indent=1, allow_nan=False) + "\n")
    os.replace(partial, path)


def _stage(path: Path, compute: Callable[[], dict]) -> dict:
    """The stage's JSON: read back when it exists, else computed (timed) and written."""
    if path.is_file():
        _log(f"{path} done, skipped")
        return json.loads(path.read_text())
    _log(f"{path.stem} of {path.parent.name} ...")
    start = time.perf_counter()
    values = compute()
    values["seconds"] = time.perf_counter() - start
    write_json(path, values)
    return values


def recipe_config(
    recipe: TrainConfig, config: BenchmarkConfig, seed: int, model_dir: Path, shuffled: bool
) -> TrainConfig:
    """The recipe on the benchmark's data and seed, in its run directory."""
    data = dataclasses.replace(
        recipe.data,
        data_source="synthetic",
        data_dir=str(Path(config.out) / "data"),
        synth_n=config.synth_n,
        synth_size=config.synth_size,
        synth_seed=config.synth_seed,
        synth_difficulty=config.synth_difficulty,
        synth_lesion_size=config.synth_lesion_size,
        shuffled_grades=shuffled,
    )
    model = dataclasses.replace(recipe.model, image_size=config.synth_size, progressive_sizes=())
    return dataclasses.replace(
        recipe,
        model_dir=str(model_dir),
        data=data,
        model=model,
        seed=seed,
        epochs=config.epochs or recipe.epochs,
        resume=True,
    )


def _trained(train_config: TrainConfig) -> RunDirectory:
    """The run directory of a finished training (trained now unless ``metrics.json`` exists)."""
    run_dir = RunDirectory(train_config.model_dir)
    if not run_dir.metrics_file.is_file():
        _log(f"training {run_dir.path}")
        training.run(train_config)
    return run_dir


def _sources(config: BenchmarkConfig, splits: Splits) -> dict:
    folder = str(Path(config.out) / "data")
    return {name: split_source(folder, "synthetic", splits, name) for name in SPLITS}


def _runner_config(config: BenchmarkConfig, image_size: int) -> RunnerConfig:
    return RunnerConfig(image_size, batch_size=config.batch_size, perturbation_images=0)


def _validation_auc(result) -> dict:
    arrays = result.validation.screening.arrays()
    graded = arrays["grades"] >= 0
    labels = screening.binary_labels(arrays["grades"][graded], screening.REFERABLE_GRADE)
    scores = arrays["predictions"][graded]
    low, high = screening.auc_confidence_interval(labels, scores, arrays["patient_ids"][graded])
    return {"auc": screening.roc_auc(labels, scores), "auc_ci": [low, high]}


def _test_summary(metrics: dict) -> dict:
    referable = metrics["screening"].get("referable_dr") or {}
    return {
        "images": metrics["evaluated"]["images"],
        "auc": referable.get("auc"),
        "auc_ci": referable.get("auc_ci"),
        "methods": {
            method: {key: value for key, value in section.items() if "/" in key}
            | {"seconds_per_image": section["seconds_per_image"]}
            for method, section in metrics["methods"].items()
        },
    }


def _studied(
    heatmap_fns: Mapping[str, HeatmapFunction],
    sources: dict,
    base: RunnerConfig,
    sigmas: tuple[float, ...],
) -> tuple[dict[str, validation.MethodValidation], RunnerConfig]:
    """Each map producer's validation study, and ``base`` cutting each one's candidates at
    its chosen σ (the same search for image models and the reference)."""
    studies = {
        method: validation.study_method(sources["validation"], fn, base, sigmas)
        for method, fn in heatmap_fns.items()
    }
    measured = dataclasses.replace(
        base, method_candidates=validation.candidate_configs(studies, base.candidates)
    )
    return studies, measured


def measure_image_model(model: keras.Model, sources: dict, config: BenchmarkConfig) -> dict:
    """Validation study of every method, then `evaluate_model` on test at the chosen σ."""
    base = _runner_config(config, model_input_size(model))
    heatmap_fns = {method: heatmap_function(model, method) for method in config.methods}
    studies, measured = _studied(heatmap_fns, sources, base, config.sigmas)
    result = evaluate_model(
        score_function(model),
        sources["test"],
        sources["validation"],
        measured,
        heatmap_fns,
        label="benchmark test",
    )
    return {
        "validation": {
            **_validation_auc(result),
            "methods": {method: study.to_dict() for method, study in studies.items()},
        },
        "test": _test_summary(result.metrics),
    }


def _measure_maps(
    score_fn: ScoreFunction,
    heatmap_fns: Mapping[str, HeatmapFunction],
    sources: dict,
    config: RunnerConfig,
) -> dict:
    """Lesion figures and time per image of map producers on the test split (no screening)."""
    result = run(sources["test"], score_fn, heatmap_fns, config, "benchmark test")
    return {
        method: method_summary(entry.lesions.metrics(), {})
        | {"seconds_per_image": entry.seconds_per_image}
        for method, entry in result.methods.items()
    }


def measure_randomised(
    model: keras.Model, trained: dict, sources: dict, config: BenchmarkConfig, seed: int
) -> dict:
    """Each method on the model randomised from the top, with the trained model's σ."""
    studies = trained["validation"]["methods"]
    base = _runner_config(config, model_input_size(model))
    candidates = {
        method: dataclasses.replace(base.candidates, sigma=studies[method]["sigma"])
        for method in config.methods
    }
    levels = {}
    for level, share in sanity.CASCADE.items():
        copy = sanity.randomised_copy(model, share, seed)
        heatmap_fns = {method: heatmap_function(copy, method) for method in config.methods}
        measured = dataclasses.replace(base, method_candidates=candidates)
        levels[level] = _measure_maps(score_function(copy), heatmap_fns, sources, measured)
    return {"levels": levels}


def measure_reference(sources: dict, config: BenchmarkConfig, seed: int, folder: Path) -> dict:
    """Train (or reload) the reference, choose its σ on validation, measure it on test."""
    path = folder / "model.keras"
    if path.is_file():
        model = keras.saving.load_model(path)
    else:
        model = reference.train_reference(
            sources["train"],
            config.synth_size,
            config.reference_width,
            config.reference_epochs,
            seed,
        )
        folder.mkdir(parents=True, exist_ok=True)
        model.save(path)
    base = _runner_config(config, config.synth_size)
    heatmap_fns = reference.heatmap_functions(model)
    studies, measured = _studied(heatmap_fns, sources, base, config.sigmas)
    return {
        "parameters": int(model.count_params()),
        "validation": {"methods": {m: study.to_dict() for m, study in studies.items()}},
        "test": {
            "methods": _measure_maps(
                reference.score_function(model), heatmap_fns, sources, measured
            )
        },
    }


def _same_split(run_dirs: list[RunDirectory]) -> Splits:
    splits = [Splits.load(run_dir.splits_file) for run_dir in run_dirs]
    for run_dir, other in zip(run_dirs[1:], splits[1:], strict=True):
        if other != splits[0]:
            raise ValueError(f"{run_dir.path} holds out other patients than {run_dirs[0].path}")
    return splits[0]


def run_seed(config: BenchmarkConfig, recipes: Mapping[str, TrainConfig], seed: int) -> None:
    """Every stage of one seed (each skipped when its JSON exists)."""
    folder = Path(config.out) / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    run_dirs = {
        name: _trained(recipe_config(recipe, config, seed, folder / name, shuffled=False))
        for name, recipe in recipes.items()
    }
    control_config = recipe_config(
        recipes[config.control_recipe], config, seed, folder / CONTROL, shuffled=True
    )
    run_dirs[CONTROL] = _trained(control_config)
    sources = _sources(config, _same_split(list(run_dirs.values())))
    keras.config.set_dtype_policy("float32")
    for name, run_dir in run_dirs.items():
        model = load_model(str(run_dir.path))
        trained = _stage(
            folder / f"{name}.json", lambda m=model: measure_image_model(m, sources, config)
        )
        if name != CONTROL:
            _stage(
                folder / f"{name}_randomised.json",
                lambda m=model, t=trained: measure_randomised(m, t, sources, config, seed),
            )
    _stage(
        folder / f"{REFERENCE}.json",
        lambda: measure_reference(sources, config, seed, folder / REFERENCE),
    )
    path = Path(config.out) / f"gallery_seed{seed}.png"
    if seed == config.seeds[0] and not path.is_file():
        _comparison_gallery(config, run_dirs, sources, folder / REFERENCE / "model.keras", path)


def _comparison_gallery(
    config: BenchmarkConfig, run_dirs: dict, sources: dict, reference_file: Path, path: Path
) -> None:
    """The first seed's comparison figure: every model and method on a few test images."""
    batch = gallery.gallery_batch(sources["test"], _runner_config(config, config.synth_size), 4)
    if batch is None:
        _log("no test image with both red and bright lesions: no gallery")
        return
    heatmap_fns = {}
    for name, run_dir in run_dirs.items():
        model = load_model(str(run_dir.path))
        label = f"{config.control_recipe} on shuffled grades" if name == CONTROL else name
        for method in config.methods:
            heatmap_fns[f"{label} · {method}"] = heatmap_function(model, method)
    heatmap_fns.update(reference.heatmap_functions(keras.saving.load_model(reference_file)))
    gallery.plot_comparison(batch, heatmap_fns, str(path))
    _log(f"gallery: {path}")


def run_benchmark(
    config: BenchmarkConfig, recipes: Mapping[str, TrainConfig], command: str
) -> dict:
    """Run (or resume) every seed, then write ``results.json`` and ``results.md``.

    Parameters
    ----------
    recipes:
        Recipe name (`drscreen.benchmark.config.recipe_name`) to its parsed flagfile, in
        ``config.recipes`` order; the first is the plain baseline.
    command:
        The command line, recorded in the results.
    """
    start = time.perf_counter()
    Path(config.out).mkdir(parents=True, exist_ok=True)
    np.seterr(all="ignore")
    for seed in config.seeds:
        run_seed(config, recipes, seed)
    return write_results(config, list(recipes), command, time.perf_counter() - start)
