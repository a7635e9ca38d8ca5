"""``drscreen evaluate``'s library side: a model and a dataset -> metrics.json, figures, report.

Reads the model (a run directory or a ``.keras`` file, `drscreen.models.runs`), the split its
training held out (the run's ``splits.json``; else a ``drscreen prepare`` folder's own
``splits.json``; else a patient split computed here, which the report says), and the data
(a dataset folder or a ``drscreen prepare`` folder, `drscreen.data.sources.split_source`).
The split applies only to the dataset it was made from (its fingerprint); any other dataset
(external validation) is evaluated whole, with the operating points of the run's own
validation images, read again where training read them, and the report says so.
Every model evaluated (the plain one, and a heatmap-aware one for the comparison) goes
through `drscreen.evaluation.model_evaluation.evaluate_model` with its own validation pass.
Writes ``metrics.json``, ``report.md``, ``predictions.csv`` (one row per evaluated image) and
the figures into the output folder: ROC, calibration, FROC, the referral curves, the heatmap
gallery at the model's crop and each gallery case on its photograph (``gallery/case_NN.png``).
A run with a lesion student (``lesions.keras``) has its map evaluated as a row of its own
(``lesions``, `drscreen.evaluation.lesion_student`) with a gallery of its own
(``lesions_gallery.png``, ``gallery/lesions_case_NN.png``).
"""

import csv
import dataclasses
import os
import sys

import keras

from drscreen.data.readers import DATASET_NAMES, read_dataset
from drscreen.data.sources import (
    PreparedSplit,
    Source,
    has_lesion_masks,
    is_prepared,
    split_source,
)
from drscreen.data.splits import ALL, SPLITS, SPLITS_FILE, Splits, dataset_fingerprint
from drscreen.data.staging import check_replaceable, staged_folder
from drscreen.evaluation import comparison, figures, gallery, report
from drscreen.evaluation.lesion_student import lesion_function
from drscreen.evaluation.model_evaluation import ModelEvaluation, evaluate_model
from drscreen.evaluation.runner import RunnerConfig, keras_functions
from drscreen.evaluation.triage import triage_sections, triage_stream
from drscreen.heatmaps import METHODS
from drscreen.heatmaps.overlay import save_image
from drscreen.heatmaps.tta import VIEW_SETS
from drscreen.models.calibration import resolve_calibration
from drscreen.models.lesion_map import LESIONS
from drscreen.models.model_card import card_markdown, model_card
from drscreen.models.quality import resolve_quality_gate
from drscreen.models.runs import (
    RunDirectory,
    load_model,
    model_input_size,
    run_calibration,
    run_lesion_model,
    run_quality_gate,
)

LESION_METRICS = ("auto", "required", "off")
SPLIT_CHOICES = (*SPLITS, ALL)
DEFAULT_SPLIT = {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0}
"""The patient split computed here when neither the model nor the data carries one."""
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
GALLERY_PHOTOGRAPHS = "gallery"
"""Subfolder of the gallery cases drawn on their photographs."""


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """What `evaluate` evaluates and where it writes.

    Attributes
    ----------
    model:
        A training run directory (holding ``best.keras``) or a ``.keras`` file, loaded with
        `drscreen.models.runs.load_model`.
    data:
        A dataset folder (read by the reader `dataset`) or a ``drscreen prepare`` output
        folder (recognised by its ``manifest.json``; `dataset` is then unused).
    out:
        Output folder for ``metrics.json``, ``report.md``, ``predictions.csv`` and figures.
    dataset:
        Reader name (`drscreen.data.readers.DATASET_NAMES`).
    validation_data:
        Folder of a validation set (same reader) on which thresholds are chosen; empty: the
        validation split of `data`.
    split:
        Part of `data` evaluated: ``train``, ``validation`` or ``test`` of the split, or
        ``all`` of `data`.
    val_fraction, test_fraction, split_seed:
        Only for a model without a run's ``splits.json`` and data without its own: the
        patient split computed here (None: `DEFAULT_SPLIT`). A run's split is the one its
        training held out, so these are refused when it has one.
    methods:
        Heatmap methods of the plain model; the first one is the report's main heatmap.
    heatmap_aware_model:
        A second run directory or ``.keras`` file, trained heatmap-aware, whose sensitivity
        heatmaps join the comparison table.
    batch_size, image_size:
        Batch size; input size (0: the model's own).
    gallery:
        Cases shown in the overlay gallery (0 for none).
    lesion_metrics:
        ``auto`` (when the data has lesion masks), ``required`` (error without masks) or
        ``off``.
    perturbation_images:
        Images per method with deletion/insertion curves.
    n_bootstrap:
        Bootstrap replicates of the AUC confidence intervals.
    tta:
        Test-time views of the referral section (`drscreen.heatmaps.tta.VIEW_SETS`).
    command:
        The command line, recorded in the report.
    progress:
        Progress lines on stderr.
    """

    model: str
    data: str
    out: str
    dataset: str = "synthetic"
    validation_data: str = ""
    split: str = "test"
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    methods: tuple[str, ...] = ("sensitivity",)
    heatmap_aware_model: str = ""
    batch_size: int = 16
    image_size: int = 0
    gallery: int = 8
    lesion_metrics: str = "auto"
    perturbation_images: int = 32
    n_bootstrap: int = 1000
    tta: str = "flips"
    command: str = ""
    progress: bool = True

    def __post_init__(self):
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset {self.dataset!r} is not one of {DATASET_NAMES}")
        if self.split not in SPLIT_CHOICES:
            raise ValueError(f"split {self.split!r} is not one of {SPLIT_CHOICES}")
        if self.lesion_metrics not in LESION_METRICS:
            raise ValueError(
                f"lesion_metrics {self.lesion_metrics!r} is not one of {LESION_METRICS}"
            )
        if self.tta not in VIEW_SETS:
            raise ValueError(f"tta {self.tta!r} is not one of {tuple(VIEW_SETS)}")
        if not self.methods:
            raise ValueError("at least one heatmap method is needed")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown heatmap methods {unknown}; methods: {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"heatmap methods {self.methods} repeat a method")
        for name in ("batch_size", "n_bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("image_size", "gallery", "perturbation_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def split_settings_given(self) -> bool:
        """Whether the patient split's fractions or seed were set."""
        return any(
            value is not None for value in (self.val_fraction, self.test_fraction, self.split_seed)
        )


def resolve_split(config: EvaluationConfig) -> tuple[Splits, str]:
    """The split to read and the file it came from ("" when computed here).

    In order: the run's ``splits.json`` (the images its training held out); a ``drscreen
    prepare`` folder's own ``splits.json``; a patient split of `config.data` computed here
    with `config`'s fractions and seed (a note on stderr says so).

    Raises
    ------
    ValueError
        When fractions or a seed are given although the run or the data fixes the split.
    """
    fixed = None
    if os.path.isdir(config.model) and RunDirectory(config.model).splits_file.is_file():
        fixed = str(RunDirectory(config.model).splits_file)
    elif is_prepared(config.data):
        fixed = os.path.join(config.data, SPLITS_FILE)
    if fixed is not None:
        if config.split_settings_given:
            raise ValueError(
                f"{fixed} fixes the split; val_fraction, test_fraction and split_seed apply "
                "only to a model and data without a splits.json"
            )
        return Splits.load(fixed), fixed
    settings = {
        key: DEFAULT_SPLIT[key] if getattr(config, key) is None else getattr(config, key)
        for key in DEFAULT_SPLIT
    }
    records = split_source(config.data, config.dataset)
    splits = Splits.by_patient(
        records,
        settings["val_fraction"],
        settings["test_fraction"],
        settings["split_seed"],
        f"drscreen evaluate, {config.model} having no splits.json",
        config.data,
    )
    print(
        f"note: {config.model} has no splits.json; using the {splits.describe()}", file=sys.stderr
    )
    return splits, ""


def _part(splits: Splits, origin: str, split: str, data: str) -> str:
    where = origin or splits.describe()
    return f"{split} part of {data} in {where}"


def _is_split_dataset(splits: Splits, origin: str, config: EvaluationConfig) -> bool | None:
    """Whether ``config.data`` is the dataset ``splits`` was made from (same fingerprint);
    None when the split predates fingerprints.

    Raises
    ------
    ValueError
        When ``config.data`` is the very folder the split was made from but its images or
        grades changed since: its training images can no longer be told apart.
    """
    if is_prepared(config.data):
        own = Splits.load(config.data)
        if not (own.fingerprint and splits.fingerprint):
            return None
        return own.fingerprint == splits.fingerprint
    records = read_dataset(config.dataset, config.data, problems=[])
    same = splits.splits_dataset(records)
    moved_on = splits.folder and os.path.realpath(splits.folder) == os.path.realpath(config.data)
    if same is False and moved_on:
        raise ValueError(
            f"data {config.data} is the folder the split {origin} was made from, but its "
            "images or grades changed since (another fingerprint): which of its images "
            "training saw is no longer known, so it cannot be evaluated; evaluate the data "
            "as it was, or a dataset the model never saw"
        )
    return same


def _run_validation(config: EvaluationConfig, splits: Splits, origin: str) -> tuple[Source, str]:
    """The validation images of the run's own split, read where training read them (its
    ``config.json``), and a description; they give the run's own operating points.

    Raises
    ------
    ValueError
        When they cannot be read as they were (folder gone, or its fingerprint changed).
    """
    located = RunDirectory(config.model).training_data() if os.path.isdir(config.model) else None
    fix = "pass --validation_data=FOLDER to choose thresholds on other labelled images"
    if located is None or not os.path.isdir(located[0]):
        where = f" ({located[0]} is gone)" if located else ""
        raise ValueError(
            f"the operating points of {config.model} come from its validation images, which "
            f"cannot be found{where}; {fix}"
        )
    folder, reader = located
    if is_prepared(folder):
        fingerprint = Splits.load(folder).fingerprint
    else:
        fingerprint = dataset_fingerprint(read_dataset(reader, folder, problems=[]))
    if fingerprint != splits.fingerprint:
        raise ValueError(
            f"the validation images of {config.model} were in {folder}, whose images or "
            f"grades changed since {origin} was written; {fix}"
        )
    return (
        split_source(folder, reader, splits, "validation"),
        f"validation part of {folder} in {origin} (the run's own operating points)",
    )


def _other_dataset(
    config: EvaluationConfig, splits: Splits, origin: str, problems: list
) -> tuple[Source, Source, dict[str, str]]:
    """Every image of ``config.data``, a dataset the run was not split from, with the
    thresholds of the run's own validation images (or of ``config.validation_data``)."""
    if config.split not in ("test", ALL):
        raise ValueError(
            f"data {config.data} is not the dataset the split {origin} was made from, so it "
            f"has no {config.split} part: another dataset is evaluated whole (--split=test "
            "or all)"
        )
    evaluated = split_source(config.data, config.dataset, problems=problems)
    coincide = set(splits.ids(ALL)).intersection(_image_ids(evaluated))
    note = (
        f"; {len(coincide)} of its image names coincide with the run's split, by chance "
        "(names alone select nothing)"
        if coincide
        else ""
    )
    print(
        f"note: {config.data} is not the dataset {config.model} was split from "
        f"({splits.describe()}): evaluating all of it{note}",
        file=sys.stderr,
    )
    if config.validation_data:
        validation = split_source(config.validation_data, config.dataset)
        validation_text = f"all of {config.validation_data}"
    else:
        validation, validation_text = _run_validation(config, splits, origin)
    description = {
        "evaluated images": (
            f"all of {config.data}: another dataset than the one the model's split was made "
            f"from ({splits.describe()}){note}"
        ),
        "validation images (thresholds, calibration)": validation_text,
    }
    return evaluated, validation, description


def _image_ids(source: Source) -> set[str]:
    if isinstance(source, PreparedSplit):
        return set(Splits.load(source.folder).ids(ALL))
    return {record.image_id for record in source}


def select_sources(config: EvaluationConfig) -> tuple[Source, Source, dict[str, str]]:
    """The evaluated images, the validation images, and a description of both for the report.

    For the dataset the split was made from (`resolve_split`; the same fingerprint), the
    evaluated images are exactly the ids of ``config.split`` (every image for ``all``), the
    validation images ``config.validation_data`` or the split's validation ids. Any other
    dataset is evaluated whole (image names that happen to be the split's select nothing),
    with the thresholds of the run's own validation images or of ``config.validation_data``.
    """
    problems: list = []
    if config.split == ALL and config.validation_data:
        splits, origin = None, ""
    else:
        splits, origin = resolve_split(config)
        own = _is_split_dataset(splits, origin, config)
        if own is False:
            evaluated, validation, description = _other_dataset(config, splits, origin, problems)
            _report_problems(config, problems)
            return evaluated, validation, description
        if own is None:
            print(
                f"note: {origin} does not record which dataset it splits (written before "
                "drscreen recorded it); its image ids are taken to be those of "
                f"{config.data}",
                file=sys.stderr,
            )
    if config.split == ALL:
        evaluated = split_source(config.data, config.dataset, problems=problems)
        evaluated_text = f"all of {config.data}"
    else:
        evaluated = split_source(config.data, config.dataset, splits, config.split, problems)
        evaluated_text = _part(splits, origin, config.split, config.data)
    _report_problems(config, problems)
    if config.validation_data:
        validation = split_source(config.validation_data, config.dataset)
        validation_text = f"all of {config.validation_data}"
    else:
        validation = split_source(config.data, config.dataset, splits, "validation")
        validation_text = _part(splits, origin, "validation", config.data)
    description = {
        "evaluated images": evaluated_text,
        "validation images (thresholds, calibration)": validation_text,
    }
    return evaluated, validation, description


def _report_problems(config: EvaluationConfig, problems: list) -> None:
    if problems:
        print(
            f"{config.dataset} {config.data}: skipped {len(problems)} unusable rows, "
            f"e.g. {problems[0][0]}: {problems[0][1]}",
            file=sys.stderr,
        )


def _load_checked(path: str, image_size: int | None) -> tuple[keras.Model, int]:
    model = load_model(path)
    own = model_input_size(model)
    if image_size and own != image_size:
        raise ValueError(f"model {path} takes {own} px images, not {image_size} px")
    return model, own


def _write_predictions(path: str, result: ModelEvaluation) -> None:
    arrays = result.evaluated.screening.arrays()
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("image_id", "patient_id", "grade", "predicted_grade"))
        for image_id, patient_id, grade, prediction in zip(
            arrays["image_ids"],
            arrays["patient_ids"],
            arrays["grades"],
            arrays["predictions"],
            strict=True,
        ):
            writer.writerow(
                (image_id, patient_id, "" if grade < 0 else int(grade), f"{prediction:.6f}")
            )


def _figures(
    config: EvaluationConfig,
    out: str,
    evaluated: Source,
    result: ModelEvaluation,
    runner_config,
    heatmap_fns,
) -> dict[str, str]:
    metrics, primary = result.metrics, config.methods[0]
    drawn: dict[str, str] = {}
    if "auc" in metrics["screening"].get("referable_dr", {}):
        drawn["ROC curves (operating points chosen on validation)"] = figures.plot_roc(
            metrics["screening"], os.path.join(out, "roc.png")
        )
        drawn["Calibration of the referable-DR probability"] = figures.plot_reliability(
            metrics["calibration"], os.path.join(out, "calibration.png")
        )
    lesion_metrics = metrics["methods"][primary]["lesions"]
    if any("froc" in entry for entry in lesion_metrics.values()):
        drawn[f"Lesion FROC curves, {primary} heatmaps"] = figures.plot_froc(
            lesion_metrics, os.path.join(out, "froc.png")
        )
    if "curves" in metrics.get("referral", {}):
        drawn["Referral by uncertainty: AUC and accuracy on the images kept"] = (
            figures.plot_referral_curves(metrics["referral"], os.path.join(out, "referral.png"))
        )
    if config.gallery:
        for method in (primary, LESIONS):
            if method in heatmap_fns:
                drawn.update(
                    _gallery(config, out, evaluated, result, runner_config, heatmap_fns, method)
                )
    return drawn


def _gallery(config, out, evaluated, result, runner_config, heatmap_fns, method: str) -> dict:
    """The gallery of one method's maps, and its cases on their photographs."""
    probability = method == LESIONS
    cases, on_photographs, target = gallery.gallery_cases(
        evaluated,
        result.evaluated,
        method,
        heatmap_fns[method],
        runner_config,
        config.gallery,
        probability,
    )
    chosen_by = (
        f"cases chosen on {target.replace('_', ' ')}, outlined in magenta"
        if target is not None
        else "cases chosen by the referable-DR prediction ŷ"
    )
    if probability:
        prefix, what, case_label = f"{LESIONS}_", "lesion-student maps", "Lesion-student case"
    else:
        prefix, what, case_label = "", f"{method} heatmaps", "Case"
    ringed = "probable lesions (≥ 0.5) ringed" if probability else "candidates ringed"
    drawn = {}
    if cases:
        drawn[f"Gallery of {what} ({chosen_by})"] = figures.plot_gallery(
            cases, os.path.join(out, f"{prefix}gallery.png")
        )
    for number, case in enumerate(on_photographs, start=1):
        path = os.path.join(out, GALLERY_PHOTOGRAPHS, f"{prefix}case_{number:02d}.png")
        save_image(path, case.panel)
        drawn[f"{case_label} {number} on its photograph, {ringed}: {case.title}"] = path
    return drawn


def _triage(config, model, evaluated, validation, runner_config, calibration) -> dict:
    """The ``gradability`` and ``referral`` sections (`drscreen.evaluation.triage`)."""
    gate, gate_source = resolve_quality_gate(run_quality_gate(config.model))
    views = VIEW_SETS[config.tta]
    quiet = dataclasses.replace(runner_config, lesion_metrics=False)
    if config.progress:
        print(f"triage: quality gate {gate_source}, test-time views {config.tta}", file=sys.stderr)
    streams = [
        None if source is None else triage_stream(source, model, gate, quiet, views)
        for source in (evaluated, validation)
    ]
    sections = triage_sections(*streams, gate, calibration, views, config.n_bootstrap)
    sections["gradability"]["gate_source"] = gate_source
    return sections


def evaluate(config: EvaluationConfig) -> dict:
    """Evaluate a model on a dataset and write ``metrics.json``, ``report.md`` and figures.

    Image-level sections need grades; lesion sections need lesion masks; a section that
    cannot be computed says why.

    Returns
    -------
    The metrics written (the ``metrics`` part of ``metrics.json``): those of `evaluate_model`
    for the plain model, plus ``heatmap_aware_model`` (its own `evaluate_model` metrics and
    ``model``) when one is given.
    """
    check_replaceable(config.out, METRICS_FILE)  # before hours of evaluation, not after
    model, image_size = _load_checked(config.model, config.image_size)
    calibration, calibration_source = resolve_calibration(run_calibration(config.model))
    aware_model = None
    if config.heatmap_aware_model:
        aware_model, _ = _load_checked(config.heatmap_aware_model, image_size)
    evaluated, validation, description = select_sources(config)
    with_masks = config.lesion_metrics != "off" and has_lesion_masks(evaluated)
    if config.lesion_metrics == "required" and not with_masks:
        raise ValueError(
            f"data {config.data}: the images evaluated have no lesion masks, so lesion metrics "
            "cannot be computed (datasets with masks: synthetic, idrid, diaretdb1); use "
            "lesion_metrics='auto' or 'off'"
        )
    runner_config = RunnerConfig(
        image_size=image_size,
        batch_size=config.batch_size,
        lesion_metrics=with_masks,
        perturbation_images=config.perturbation_images,
        progress=config.progress,
    )
    score_fn, heatmap_fns = keras_functions(model, config.methods)
    student = run_lesion_model(config.model, image_size)
    if student is not None:
        heatmap_fns[LESIONS] = lesion_function(model, student)
    result = evaluate_model(
        score_fn,
        evaluated,
        validation,
        runner_config,
        heatmap_fns,
        calibration,
        calibration_source,
        config.n_bootstrap,
    )
    metrics = result.metrics
    metrics.update(_triage(config, model, evaluated, validation, runner_config, calibration))
    rows = dict(metrics["methods"])
    if aware_model is not None:
        aware_score, aware_heatmaps = keras_functions(aware_model, ("sensitivity",))
        aware = evaluate_model(
            aware_score,
            evaluated,
            validation,
            runner_config,
            aware_heatmaps,
            *resolve_calibration(run_calibration(config.heatmap_aware_model)),
            config.n_bootstrap,
            label="heatmap-aware model",
        )
        metrics["heatmap_aware_model"] = {"model": config.heatmap_aware_model, **aware.metrics}
        rows[comparison.HEATMAP_AWARE] = aware.metrics["methods"]["sensitivity"]

    context = {
        "dataset": config.data if is_prepared(config.data) else f"{config.dataset} ({config.data})",
        "model": config.model,
        "command": config.command or "drscreen.commands.evaluate.evaluate",
        "image size": f"{image_size} px",
        "heatmap methods": ", ".join(config.methods),
        **description,
        "per-image predictions": PREDICTIONS_FILE,
    }
    if student is not None:
        context["lesion map"] = (
            f"the lesion student {RunDirectory(config.model).lesions_file} (row {LESIONS!r})"
        )
    if config.heatmap_aware_model:
        context["heatmap-aware model"] = config.heatmap_aware_model
    if "skipped" in metrics["screening"]:
        context["image-level metrics"] = f"skipped: {metrics['screening']['skipped']}"
    if not with_masks:
        context["lesion-level metrics"] = (
            "off" if config.lesion_metrics == "off" else "skipped: no lesion masks"
        )
    card = card_markdown(model_card(config.model))
    with staged_folder(config.out, METRICS_FILE) as out:
        _write_predictions(os.path.join(out, PREDICTIONS_FILE), result)
        drawn = _figures(config, out, evaluated, result, runner_config, heatmap_fns)
        report.write_report(out, metrics, drawn, comparison.comparison_rows(rows), context, card)
    return metrics
