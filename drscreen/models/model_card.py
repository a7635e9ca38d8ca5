"""The model card: what a model is, what it was trained and validated on, and what it is for.

The fields of Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019) that a drscreen
run can fill from its own files: model details (architecture, input, drscreen version),
intended use and out-of-scope uses, training data (reader, folder, images and patients per
split, whether the photographs are synthetic), evaluation data and metrics (the held-out test
split's referable-DR AUC with its confidence interval, the validation AUC, the operating
points chosen on validation and what they gave on test), the calibration, the gradability
gate, and caveats. Factors and ethical considerations that a run cannot know are stated as
such. A model trained on synthetic photographs carries `SYNTHETIC_WARNING`, shown by every
report and written into every export.

`model_card(run_or_model)` is the card of a run directory (its ``model_card.json``, written
by training after its final evaluation, else built from the run's files) or of a bare
``.keras`` file (provenance unknown, said so). `card_markdown` and `card_html` render it.
"""

import html
import json
import os
from pathlib import Path

import drscreen
from drscreen.data.splits import SPLITS, Splits
from drscreen.data.staging import write_atomically
from drscreen.models.quality import resolve_quality_gate
from drscreen.models.runs import RunDirectory, run_calibration, run_quality_gate

MODEL_CARD_FILE = "model_card.json"
CARD_FORMAT = 1
SYNTHETIC_WARNING = "trained on synthetic photographs — not for clinical use"
UNKNOWN_WARNING = "training data unknown (a model file without its run) — not for clinical use"
INTENDED_USE = {
    "primary": (
        "Support for diabetic-retinopathy screening: flags colour fundus photographs with "
        "referable DR (ICDR grade 2 or more) for a human grader, with a heatmap of the "
        "evidence and a gradability check."
    ),
    "users": "Screening programmes and retina researchers, with a grader deciding.",
    "out_of_scope": [
        "Diagnosis or referral without a human grader.",
        "Photographs other than colour fundus photographs (OCT, red-free, anterior segment).",
        "Populations, cameras or protocols unlike the training data without re-validation.",
    ],
}
LIMITATIONS = [
    "Trained with image-level grades only: the heatmap shows evidence the model used, not a "
    "lesion segmentation.",
    "The operating points and the calibration were chosen on the validation split; another "
    "population needs its own validation.",
    "The gradability gate is a logistic model of measured image quality; it refuses "
    "photographs it cannot trust, it does not grade them.",
    "Factors (camera, ethnicity, age, sex) were not recorded, so no per-group performance "
    "is reported.",
]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _training_data(run: RunDirectory) -> dict:
    """Reader, folder, size per split and whether the photographs are synthetic."""
    config = _read_json(run.config_file) or {}
    data = config.get("data", {})
    entry: dict = {"source": data.get("data_source", "unknown")}
    splits = Splits.load(run.splits_file) if run.splits_file.is_file() else None
    if splits is not None:
        entry.update(
            dataset=splits.dataset,
            folder=splits.folder,
            fingerprint=splits.fingerprint,
            split=f"by patient, {splits.made_by}, seed {splits.seed}",
            images={name: len(splits.ids(name)) for name in SPLITS},
        )
    if data.get("data_source") == "synthetic":
        entry["synthetic_benchmark"] = {
            key: data.get(key) for key in ("synth_n", "synth_size", "synth_difficulty")
        }
    entry["synthetic"] = entry.get("dataset") == "synthetic" or entry["source"] == "synthetic"
    return entry


def _metrics(run: RunDirectory) -> dict:
    """Test AUC with its CI, validation AUC, operating points chosen on validation."""
    metrics = _read_json(run.metrics_file)
    if metrics is None:
        return {"available": False, "reason": f"{run.metrics_file} was not written"}
    referable = metrics.get("screening", {}).get("referable_dr")
    validation = metrics.get("validation") or {}
    entry: dict = {
        "test_images": metrics.get("evaluated", {}).get("images"),
        "validation_images": validation.get("images"),
        "validation_referable_dr_auc": validation.get("referable_dr_auc"),
    }
    if referable is None:
        entry["test_referable_dr_auc"] = {"skipped": metrics["screening"].get("skipped")}
        return entry
    entry["test_referable_dr_auc"] = {
        "value": referable["auc"],
        "ci": referable["auc_ci"],
        "ci_level": referable["ci_level"],
        "bootstrap_unit": referable["bootstrap_unit"],
    }
    entry["operating_points"] = {
        target: {
            "threshold": point["threshold"],
            "chosen_on": f"validation sensitivity {target}",
            "test_sensitivity": point["sensitivity"],
            "test_specificity": point["specificity"],
        }
        for target, point in referable["operating_points"].items()
    }
    return entry


def _calibration_and_gate(run_or_model: str) -> dict:
    calibration = run_calibration(run_or_model)
    gate, gate_source = resolve_quality_gate(run_quality_gate(run_or_model))
    return {
        "calibration": (
            {**calibration[0].to_dict(), "source": calibration[1]}
            if calibration
            else {"source": "default (no calibration fitted on this run's validation images)"}
        ),
        "quality_gate": {
            "ungradable_when": f"quality <= {gate.threshold:.6g}",
            "fitted_on": gate.fitted_on,
            "source": gate_source,
        },
    }


def _card(model: dict, training: dict, metrics: dict, run_or_model: str) -> dict:
    warning = SYNTHETIC_WARNING if training.get("synthetic") else None
    if training.get("source") == "unknown" and not training.get("dataset"):
        warning = UNKNOWN_WARNING
    return {
        "format": CARD_FORMAT,
        "model_details": {"drscreen_version": drscreen.__version__, **model},
        "intended_use": INTENDED_USE,
        "training_data": training,
        "evaluation": metrics,
        **_calibration_and_gate(run_or_model),
        "factors": "not recorded",
        "limitations": LIMITATIONS,
        "warning": warning,
    }


def build_model_card(run_or_model: str) -> dict:
    """The card of a run directory, built from its files (``config.json``, ``splits.json``,
    ``metrics.json``, ``calibration.json``, ``quality.json``), or of a bare ``.keras`` file."""
    if not os.path.isdir(run_or_model):
        model = {"source": run_or_model, "architecture": "unknown (a .keras file alone)"}
        return _card(model, {"source": "unknown"}, {"available": False}, run_or_model)
    run = RunDirectory(run_or_model)
    config = _read_json(run.config_file) or {}
    settings = config.get("model", {})
    model = {
        "source": str(run.path),
        "architecture": settings.get("model", "unknown"),
        "input": (
            f"colour fundus photograph cropped to its field of view, "
            f"{settings.get('image_size', '?')} px square, RGB in [0, 255]"
        ),
        "output": "ICDR grade regression, a calibrated referable-DR probability, a heatmap",
        "lesions": (
            "the lesion student's per-pixel lesion probability (lesions.keras)"
            if run.lesions_file.is_file()
            else "the heatmap (no lesion student was trained)"
        ),
        "training": {key: config.get(key) for key in ("epochs", "seed") if key in config}
        | {"heatmap_weight": config.get("heatmap", {}).get("heatmap_weight")},
    }
    return _card(model, _training_data(run), _metrics(run), run_or_model)


def write_model_card(run: RunDirectory) -> Path:
    """Write the run's ``model_card.json`` (training does, after its final evaluation)."""
    path = run.path / MODEL_CARD_FILE
    write_atomically(path, json.dumps(build_model_card(str(run.path)), indent=2) + "\n")
    return path


def model_card(run_or_model: str) -> dict:
    """The run's ``model_card.json``, else the card built from its files."""
    written = Path(run_or_model) / MODEL_CARD_FILE
    if os.path.isdir(run_or_model) and written.is_file():
        card = _read_json(written)
        if card is not None:
            return card
    return build_model_card(run_or_model)


def _summary(card: dict) -> list[tuple[str, str]]:
    """(field, text) lines of the card that a reader of a report needs."""
    training = card["training_data"]
    details = card["model_details"]
    lines = [("Model", f"{details.get('architecture')} ({details.get('source')})")]
    if training.get("dataset"):
        counts = ", ".join(f"{k} {v}" for k, v in training["images"].items())
        synthetic = " (synthetic photographs)" if training.get("synthetic") else ""
        lines.append(
            ("Training data", f"{training['dataset']}{synthetic} in {training['folder']}; "
                              f"images: {counts}")
        )  # fmt: skip
    else:
        lines.append(("Training data", "unknown"))
    evaluation = card["evaluation"]
    auc = evaluation.get("test_referable_dr_auc") or {}
    if "value" in auc:
        low, high = auc["ci"]
        lines.append(
            (
                "Held-out test referable-DR AUC",
                f"{auc['value']:.3f} ({round(100 * auc['ci_level'])}% CI {low:.3f}–{high:.3f}; "
                f"{evaluation.get('test_images')} images); validation AUC "
                f"{_number(evaluation.get('validation_referable_dr_auc'))}",
            )
        )
    for target, point in (evaluation.get("operating_points") or {}).items():
        lines.append(
            (
                f"Operating point {target}",
                f"grade ≥ {point['threshold']:.3f} ({point['chosen_on']}): test sensitivity "
                f"{_number(point['test_sensitivity'])}, specificity "
                f"{_number(point['test_specificity'])}",
            )
        )
    gate = card["quality_gate"]
    lines.append(("Quality gate", f"ungradable when {gate['ungradable_when']} ({gate['source']})"))
    lines.append(("Intended use", card["intended_use"]["primary"]))
    lines.append(("Limitations", " ".join(card["limitations"])))
    return lines


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def card_markdown(card: dict) -> list[str]:
    """The card as Markdown lines for ``report.md``: the warning first, in bold."""
    lines = [f"**Warning: {card['warning']}.**", ""] if card.get("warning") else []
    lines += ["## Model card", ""]
    lines += [f"- {field}: {text}" for field, text in _summary(card)]
    return lines


def card_html(card: dict) -> str:
    """The card as an HTML block for ``report.html``: the warning first, in a red box."""
    warning = (
        f'<p class="warning">Warning: {html.escape(card["warning"])}.</p>'
        if card.get("warning")
        else ""
    )
    items = "".join(
        f"<li><b>{html.escape(field)}</b>: {html.escape(text)}</li>"
        for field, text in _summary(card)
    )
    return f'{warning}<div class="card"><b>Model card</b><ul>{items}</ul></div>'
