"""The lesion benchmark, stage by stage: train, study on validation, measure on test.

For each seed (one patient split and one initialisation):

1. every recipe is trained by `drscreen.training.run` in ``OUT/seed<S>/<recipe>/`` (all on
   ``OUT/data``, generated once; the seed's models must hold out the same patients), and
   ``control_recipe`` on shuffled grades in ``OUT/seed<S>/control/``;
2. the paper's heatmap-aware training: each fine-tuning recipe starts from the first recipe's
   model of the seed, at the λ chosen once on the first seed (``OUT/heatmap_aware_sweep.json``:
   every λ of `BenchmarkConfig.finetune_multipliers` trained, the largest whose validation AUC
   stays at or above the plain model's validation CI lower bound kept; grades only);
3. each image-supervised model: every map (each method's single map and the type-specific
   halves of `BenchmarkConfig.typed_methods`) is studied on validation
   (`drscreen.benchmark.validation`: σ, validation FROC, flip stability, grade separation),
   then measured on test by `evaluate_model` with each map's σ -> ``<model>.json``; every
   model but the control is also measured with its weights randomised from the top
   (`drscreen.benchmark.sanity`) -> ``<model>_randomised.json``;
4. the pixel-supervised reference: tuned on the first seed's validation masks
   (`drscreen.benchmark.tuning` -> ``OUT/reference_tuning.json``), the chosen configuration
   trained on every seed's training masks -> ``reference.json``, and the few-shot reference
   trained on the seed's validation masks only, as many passes (Choe et al. 2020) ->
   ``few_shot.json``;
5. the lesion student (`drscreen.training.student`): pseudo-masks from the first recipe's map
   with the best validation grade separation (mask-free), a segmentation student trained on
   them -> ``student.json``; the same from the control's map and shuffled grades ->
   ``student_control.json`` (a student that still finds lesions there copies the image, not
   the grades). A teacher whose map puts no pixel of a graded-DR photograph above the
   healthy photographs' level gives no pseudo-lesion: the stage records why instead;
6. for the first seed, ``OUT/gallery_seed<S>.png``: a few test photographs under every model,
   map and the references (`drscreen.benchmark.gallery`), to look at before trusting a figure.

Every stage's JSON is written atomically when the stage ends and a stage whose JSON exists
is skipped, so a killed benchmark continues where it stopped (an interrupted training resumes
from its checkpoint), and a recipe group can be run alone into the same folder and merged.
`drscreen.benchmark.results` turns the JSON into the tables.
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
import tensorflow as tf

from drscreen.benchmark import gallery, reference, sanity, tuning, validation
from drscreen.benchmark.config import MAX_MAP_STRIDE, BenchmarkConfig
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
from drscreen.heatmaps.gradcam import default_gradcam_layer
from drscreen.models.lesion_map import LESIONS, lesion_map
from drscreen.models.runs import RunDirectory, load_model, model_input_size
from drscreen.training import run as training
from drscreen.training.config import StudentConfig, TrainConfig
from drscreen.training.data import shuffled_grades
from drscreen.training.student import train_student

CONTROL = "control"
REFERENCE = "reference"
FEW_SHOT = "few_shot"
STUDENT = "student"
STUDENT_CONTROL = "student_control"
SIGNED_HALVES = {"decrease": ("red_lesions",), "increase": ("bright_lesions",)}
"""A type-specific map (``<method>:<half>``) and the lesion group it is meant for: brightening
a dark lesion lowers the grade, brightening a bright one raises it."""


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


def finetune_config(
    recipe: TrainConfig,
    config: BenchmarkConfig,
    seed: int,
    model_dir: Path,
    init_from: Path,
    heatmap_weight: float,
) -> TrainConfig:
    """A heatmap-aware recipe fine-tuning ``init_from`` at λ = ``heatmap_weight``."""
    base = recipe_config(recipe, config, seed, model_dir, shuffled=False)
    heatmap = dataclasses.replace(base.heatmap, heatmap_weight=heatmap_weight)
    return dataclasses.replace(base, init_from=str(init_from), heatmap=heatmap)


def finetune_dir(folder: Path, name: str, heatmap_weight: float) -> Path:
    """Where a fine-tuning recipe at one λ is trained (the sweep's runs are reused)."""
    return folder / f"{name}_lambda{heatmap_weight:g}"


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


def map_target(name: str) -> tuple[str, ...]:
    """The lesion group(s) a map is meant for: its half's group for ``<method>:<half>``,
    all lesions otherwise (and for a reference map named after its group)."""
    if ":" in name:
        return SIGNED_HALVES[name.rsplit(":", 1)[1]]
    for group in reference.GROUPS:
        if name.endswith(group):
            return (group,)
    return validation.ALL_LESIONS


def image_maps(model: keras.Model, config: BenchmarkConfig) -> dict[str, HeatmapFunction]:
    """Every map of an image-supervised model: one per method, and the two signed halves of
    each typed method (``sensitivity:decrease``, ``sensitivity:increase``, ...)."""
    maps = {method: heatmap_function(model, method) for method in config.methods}
    for method in config.typed_methods:
        for half in SIGNED_HALVES:
            maps[f"{method}:{half}"] = heatmap_function(model, method, form=half)
    return maps


def _studied(
    heatmap_fns: Mapping[str, HeatmapFunction],
    sources: dict,
    base: RunnerConfig,
    sigmas: tuple[float, ...],
) -> tuple[dict[str, validation.MethodValidation], RunnerConfig]:
    """Each map producer's validation study (σ on its own target), and ``base`` cutting each
    one's candidates at its chosen σ (the same search for image models and references)."""
    studies = {
        name: validation.study_method(sources["validation"], fn, base, sigmas, map_target(name))
        for name, fn in heatmap_fns.items()
    }
    measured = dataclasses.replace(
        base, method_candidates=validation.candidate_configs(studies, base.candidates)
    )
    return studies, measured


def map_stride(model: keras.Model, method: str) -> int:
    """Input pixels per map pixel: Grad-CAM's feature map is coarser than the image."""
    if method != "gradcam":
        return 1
    features = model.get_layer(default_gradcam_layer(model)).output.shape[1]
    return max(1, round(model_input_size(model) / features))


def measure_image_model(model: keras.Model, sources: dict, config: BenchmarkConfig) -> dict:
    """Validation study of every map, then `evaluate_model` on test at the chosen σ."""
    base = _runner_config(config, model_input_size(model))
    heatmap_fns = image_maps(model, config)
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
            "methods": {
                name: study.to_dict() | {"map_stride": map_stride(model, name.split(":")[0])}
                for name, study in studies.items()
            },
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
    """Each method's single map on the model randomised from the top, with the trained
    model's σ."""
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


def measure_maps(
    score_fn: ScoreFunction,
    heatmap_fns: Mapping[str, HeatmapFunction],
    sources: dict,
    config: BenchmarkConfig,
) -> dict:
    """A map producer that is not an image model (a reference, a student): σ studied on
    validation, lesion figures on test."""
    base = _runner_config(config, config.synth_size)
    studies, measured = _studied(heatmap_fns, sources, base, config.sigmas)
    return {
        "validation": {"methods": {m: study.to_dict() for m, study in studies.items()}},
        "test": {"methods": _measure_maps(score_fn, heatmap_fns, sources, measured)},
    }


def _saved_model(path: Path, train: Callable[[], keras.Model]) -> keras.Model:
    """The model at ``path``, trained and saved there (atomically) when absent."""
    if path.is_file():
        return keras.saving.load_model(path)
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"partial_{path.name}")
    model.save(partial)
    os.replace(partial, path)
    return model


def reference_config(
    config: BenchmarkConfig, sources: dict
) -> tuple[reference.ReferenceConfig, tuple[int, ...]]:
    """The tuned reference configuration and its training blocks: ``OUT/reference_tuning.json``,
    computed on the first seed's split when absent (its model is that seed's reference)."""
    path = Path(config.out) / "reference_tuning.json"
    if not path.is_file():
        folder = Path(config.out) / f"seed{config.seeds[0]}"
        result, model = tuning.tune_reference(
            sources["train"],
            sources["validation"],
            _runner_config(config, config.synth_size),
            config.sigmas,
            config.seeds[0],
            folder / "reference_tuning",
            start=tuning.start_config(config.reference_width),
            checkpoints=config.reference_checkpoints,
            max_epochs=config.reference_max_epochs,
            log=_log,
        )
        _saved_model(folder / REFERENCE / "model.keras", lambda: model)
        write_json(path, result.to_dict())
    chosen = json.loads(path.read_text())
    made_with = (chosen.get("checkpoints"), chosen.get("max_epochs"))
    asked = (list(config.reference_checkpoints), config.reference_max_epochs)
    if made_with != asked:
        raise ValueError(
            f"{path} was tuned with checkpoints {made_with[0]} and at most {made_with[1]} "
            f"epochs, not the --reference_checkpoints {asked[0]} and --reference_max_epochs "
            f"{asked[1]} asked for: remove it (and seed*/reference_tuning/) to tune again"
        )
    return tuning.config_from_dict(chosen["chosen"]["config"]), tuple(chosen["blocks"])


def few_shot_config(tuned: reference.ReferenceConfig, sources: dict) -> reference.ReferenceConfig:
    """The tuned configuration on the validation masks, as many passes over them as the full
    reference makes over the training masks (batches no larger than the split)."""
    images = max(len(sources["validation"]), 1)
    return dataclasses.replace(tuned, batch_size=min(tuned.batch_size, images))


def _references(config: BenchmarkConfig, sources: dict, seed: int, folder: Path) -> None:
    """The tuned reference and the few-shot reference of one seed, each measured."""
    tuned, blocks = reference_config(config, sources)
    size = config.synth_size
    for name, train, settings in (
        (REFERENCE, sources["train"], tuned),
        (FEW_SHOT, sources["validation"], few_shot_config(tuned, sources)),
    ):
        _stage(
            folder / f"{name}.json",
            lambda name=name, train=train, settings=settings: _measure_reference(
                _saved_model(
                    folder / name / "model.keras",
                    lambda: reference.train_reference(train, size, settings, seed, blocks),
                ),
                name,
                settings,
                sources,
                config,
            ),
        )


def _measure_reference(
    model: keras.Model,
    name: str,
    settings: reference.ReferenceConfig,
    sources: dict,
    config: BenchmarkConfig,
) -> dict:
    """A reference's maps (``<name>_red_lesions``, ...) measured like every map."""
    maps = reference.heatmap_functions(model, prefix=name)
    measured = measure_maps(reference.score_function(model), maps, sources, config)
    return {"config": settings.to_dict(), "parameters": int(model.count_params()), **measured}


def heatmap_aware_weights(
    config: BenchmarkConfig, finetunes: Mapping[str, TrainConfig], plain: str
) -> dict[str, float]:
    """λ of each fine-tuning recipe: ``OUT/heatmap_aware_sweep.json``, computed on the first
    seed when absent (every λ of the grid fine-tuned from that seed's plain model)."""
    path = Path(config.out) / "heatmap_aware_sweep.json"
    if not path.is_file():
        seed = config.seeds[0]
        folder = Path(config.out) / f"seed{seed}"
        plain_measured = json.loads((folder / f"{plain}.json").read_text())["validation"]
        floor = plain_measured["auc_ci"][0]
        sweep: dict = {
            "rule": (
                "the largest λ whose validation referable-DR AUC is at or above the plain "
                "model's validation CI lower bound (grades only); the smallest λ when none is"
            ),
            "plain_validation_auc": plain_measured["auc"],
            "plain_validation_ci_low": floor,
            "recipes": {},
        }
        for name, recipe in finetunes.items():
            trials = []
            for multiplier in config.finetune_multipliers:
                weight = recipe.heatmap.heatmap_weight * multiplier
                run_dir = _trained(
                    finetune_config(
                        recipe,
                        config,
                        seed,
                        finetune_dir(folder, name, weight),
                        folder / plain / "best.keras",
                        weight,
                    )
                )
                metrics = json.loads(run_dir.metrics_file.read_text())
                trials.append(
                    {"lambda": weight, "validation_auc": metrics["validation"]["referable_dr_auc"]}
                )
            kept = [t["lambda"] for t in trials if t["validation_auc"] >= floor]
            sweep["recipes"][name] = {
                "penalty": recipe.heatmap.heatmap_penalty,
                "trials": trials,
                "chosen": max(kept) if kept else min(t["lambda"] for t in trials),
                "auc_kept": bool(kept),
            }
        write_json(path, sweep)
    recipes = json.loads(path.read_text())["recipes"]
    return {name: recipes[name]["chosen"] for name in finetunes}


def student_teacher(measured: dict, config: BenchmarkConfig) -> str:
    """The plain model's method whose validation map best separates any-DR photographs from
    grade-0 ones (mask-free; the first of `config.methods` on a tie), among the maps fine
    enough to place a lesion (`MAX_MAP_STRIDE`)."""
    studies = measured["validation"]["methods"]
    fine = [m for m in config.methods if studies[m]["map_stride"] <= MAX_MAP_STRIDE]
    if not fine:
        raise ValueError(
            f"no method of --methods={','.join(config.methods)} gives a map finer than "
            f"{MAX_MAP_STRIDE} px for the lesion student's teacher"
        )
    return max(fine, key=lambda m: studies[m]["grade_separation"] or 0.0)


def student_config(
    config: BenchmarkConfig, recipe: TrainConfig, method: str, sigma: float
) -> StudentConfig:
    """The student of the plain recipe, with the benchmark's teacher, σ and lesion level."""
    return dataclasses.replace(
        recipe.student,
        student_enabled=True,
        student_teacher_method=method,
        student_sigma=float(sigma),
        student_positive_quantile=config.student_positive_quantile,
        student_epochs=config.epochs or recipe.student.student_epochs,
    )


def student_maps(model: keras.Model) -> dict[str, HeatmapFunction]:
    """The student's lesion map in the runner's form (its grade slot: the map's maximum)."""

    @tf.function(reduce_retracing=True)
    def maps(images: tf.Tensor, fov_masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        heatmap = lesion_map(model, images, fov_masks)
        return tf.reduce_max(heatmap, axis=[1, 2]), heatmap

    return {LESIONS: maps}


def _students(
    config: BenchmarkConfig,
    recipe: TrainConfig,
    run_dirs: Mapping[str, RunDirectory],
    plain: str,
    sources: dict,
    seed: int,
    folder: Path,
) -> None:
    """The lesion student of the plain model and of the shuffled-grade control."""
    measured = json.loads((folder / f"{plain}.json").read_text())
    method = student_teacher(measured, config)
    sigma = measured["validation"]["methods"][method]["sigma"]
    settings = student_config(config, recipe, method, sigma)
    size = config.synth_size
    for name, teacher_run, train in (
        (STUDENT, run_dirs[plain], sources["train"]),
        (STUDENT_CONTROL, run_dirs[CONTROL], shuffled_grades(sources["train"], seed)),
    ):

        def measure(teacher_run=teacher_run, train=train, name=name) -> dict:
            teacher = heatmap_function(load_model(str(teacher_run.path)), method)
            try:
                model = _saved_model(
                    folder / name / "model.keras",
                    lambda: train_student(teacher, train, size, settings, seed, verbose=2),
                )
            except ValueError as error:  # e.g. no pseudo-positive: the teacher separates nothing
                _log(f"{name} of seed{seed} not trained: {error}")
                return {"teacher": method, "sigma": sigma, "skipped": str(error)}
            maps = student_maps(model)
            measured_maps = measure_maps(reference.score_function(model), maps, sources, config)
            return {
                "teacher": method,
                "sigma": sigma,
                "config": dataclasses.asdict(settings),
                **measured_maps,
            }

        _stage(folder / f"{name}.json", measure)


def _same_split(run_dirs: list[RunDirectory]) -> Splits:
    splits = [Splits.load(run_dir.splits_file) for run_dir in run_dirs]
    for run_dir, other in zip(run_dirs[1:], splits[1:], strict=True):
        if other != splits[0]:
            raise ValueError(f"{run_dir.path} holds out other patients than {run_dirs[0].path}")
    return splits[0]


def _measure_image_models(
    run_dirs: Mapping[str, RunDirectory], sources: dict, config: BenchmarkConfig, folder, seed
) -> None:
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


def run_seed(
    config: BenchmarkConfig,
    recipes: Mapping[str, TrainConfig],
    finetunes: Mapping[str, TrainConfig],
    seed: int,
) -> None:
    """Every stage of one seed (each skipped when its JSON exists)."""
    folder = Path(config.out) / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    plain = next(iter(recipes))
    run_dirs = {
        name: _trained(recipe_config(recipe, config, seed, folder / name, shuffled=False))
        for name, recipe in recipes.items()
    }
    control_config = recipe_config(
        recipes[config.control_recipe], config, seed, folder / CONTROL, shuffled=True
    )
    run_dirs[CONTROL] = _trained(control_config)
    sources = _sources(config, _same_split(list(run_dirs.values())))
    _measure_image_models(run_dirs, sources, config, folder, seed)
    if finetunes:
        weights = heatmap_aware_weights(config, finetunes, plain)
        tuned = {
            name: _trained(
                finetune_config(
                    recipe,
                    config,
                    seed,
                    finetune_dir(folder, name, weights[name]),
                    run_dirs[plain].model_file,
                    weights[name],
                )
            )
            for name, recipe in finetunes.items()
        }
        _same_split([run_dirs[plain], *tuned.values()])
        _measure_image_models(tuned, sources, config, folder, seed)
        run_dirs = {**run_dirs, **tuned}
    if config.references:
        _references(config, sources, seed, folder)
    if config.student:
        _students(config, recipes[plain], run_dirs, plain, sources, seed, folder)
    if seed == config.seeds[0]:  # redrawn by every run, so it shows every model measured
        _comparison_gallery(config, sources, folder, Path(config.out) / f"gallery_seed{seed}.png")


def _measured_run(config: BenchmarkConfig, folder: Path, name: str) -> Path | None:
    """The run directory of the image model measured as ``<name>.json`` in a seed's folder (a
    fine-tuning recipe's at its chosen λ); None for a stage that is not an image model."""
    if (folder / name / "best.keras").is_file():
        return folder / name
    sweep = Path(config.out) / "heatmap_aware_sweep.json"
    recipes = json.loads(sweep.read_text())["recipes"] if sweep.is_file() else {}
    if name in recipes:
        return finetune_dir(folder, name, recipes[name]["chosen"])
    return None


def _comparison_gallery(config: BenchmarkConfig, sources: dict, folder: Path, path: Path) -> None:
    """The first seed's comparison figure: every model measured in ``folder`` (this run's or
    an earlier one's) and each of its methods on a few test images, the references and the
    students."""
    batch = gallery.gallery_batch(sources["test"], _runner_config(config, config.synth_size), 4)
    if batch is None:
        _log("no test image with both red and bright lesions: no gallery")
        return
    heatmap_fns = {}
    runs = {path.stem: _measured_run(config, folder, path.stem) for path in folder.glob("*.json")}
    measured = sorted(
        (name for name, run_dir in runs.items() if run_dir is not None),
        key=lambda name: (name == CONTROL, name),
    )
    for name in measured:
        model = load_model(str(runs[name]))
        label = f"{config.control_recipe} on shuffled grades" if name == CONTROL else name
        for method in config.methods[:1] if name == CONTROL else config.methods:
            heatmap_fns[f"{label} · {method}"] = heatmap_function(model, method)
    if (folder / REFERENCE / "model.keras").is_file():
        model = keras.saving.load_model(folder / REFERENCE / "model.keras")
        heatmap_fns.update(reference.heatmap_functions(model))
    if (folder / FEW_SHOT / "model.keras").is_file():
        few_shot = keras.saving.load_model(folder / FEW_SHOT / "model.keras")
        heatmap_fns[FEW_SHOT] = reference.heatmap_functions(few_shot, FEW_SHOT)[
            f"{FEW_SHOT}_{reference.ALL_LESIONS}"
        ]
    for name in (STUDENT, STUDENT_CONTROL):
        if (folder / name / "model.keras").is_file():
            model = keras.saving.load_model(folder / name / "model.keras")
            heatmap_fns[name] = student_maps(model)[LESIONS]
    gallery.plot_comparison(batch, heatmap_fns, str(path))
    _log(f"gallery: {path}")


def run_benchmark(
    config: BenchmarkConfig,
    recipes: Mapping[str, TrainConfig],
    command: str,
    finetunes: Mapping[str, TrainConfig] | None = None,
) -> dict:
    """Run (or resume) every seed, then write ``results.json`` and ``results.md``.

    Parameters
    ----------
    recipes:
        Recipe name (`drscreen.benchmark.config.recipe_name`) to its parsed flagfile, in
        ``config.recipes`` order; the first is the plain baseline.
    command:
        The command line, recorded in the results.
    finetunes:
        The same for ``config.finetune_recipes``.
    """
    start = time.perf_counter()
    Path(config.out).mkdir(parents=True, exist_ok=True)
    np.seterr(all="ignore")
    finetunes = finetunes or {}
    for seed in config.seeds:
        run_seed(config, recipes, finetunes, seed)
    return write_results(
        config, list(recipes), list(finetunes), command, time.perf_counter() - start
    )
