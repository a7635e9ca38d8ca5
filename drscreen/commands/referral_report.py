"""The per-patient referral decision of `drscreen predict`, and its ``report.html``.

Photographs are grouped by patient and eye from a CSV with ``image``, ``patient`` and ``eye``
columns when given (`read_patients`), else from Kaggle-style names (``<patient>_left``,
``<patient>_right``; any other name is its own patient, eye unknown). Each eye gets
**cannot grade** (the gradability gate refused it), **refer** (its grade at or above the run's
operating point: the validation threshold of the requested sensitivity in the run's
``metrics.json``; without one, a referable probability of at least 0.5) or **do not refer**.
A patient is referred when an eye is, cannot be graded when no eye is referred and one
cannot be graded, and is not referred otherwise. ``report.html`` is one self-contained page
(overlays embedded, the lesion student's panel under the heatmap's when the model has one)
listing every patient, sortable by decision.
"""

import base64
import csv
import dataclasses
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from drscreen.models.runs import RunDirectory

REFER, CANNOT_GRADE, DO_NOT_REFER = "refer", "cannot grade", "do not refer"
DECISIONS = (REFER, CANNOT_GRADE, DO_NOT_REFER)
"""Decisions in the report's default order: who needs a grader first."""
REPORT_FILE = "report.html"
_EYE_NAME = re.compile(r"(?P<patient>.+)_(?P<eye>left|right)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """The rule that refers an eye: ``grade >= threshold``, or (threshold None) a referable
    probability of at least 0.5; ``description`` says which, for the report."""

    threshold: float | None
    description: str

    def refers(self, grade: float, probability: float) -> bool:
        return grade >= self.threshold if self.threshold is not None else probability >= 0.5


@dataclasses.dataclass(frozen=True)
class EyeResult:
    """One photograph of a patient, as the report shows it."""

    image: str
    patient: str
    eye: str
    decision: str
    referable_probability: float
    uncertainty: float
    quality: float
    overlay_path: str
    lesions_path: str = ""
    """The lesion-map panel, "" without a lesion student."""


@dataclasses.dataclass(frozen=True)
class PatientResult:
    """A patient's decision and eyes (the highest probability and uncertainty of the eyes,
    the lowest quality)."""

    patient: str
    decision: str
    referable_probability: float
    uncertainty: float
    quality: float
    eyes: tuple[EyeResult, ...]


def patient_and_eye(image: str) -> tuple[str, str]:
    """``.../10_left.jpeg`` -> ``("10", "left")``; a name without an eye -> ``(stem, "")``."""
    stem = Path(image).stem
    match = _EYE_NAME.fullmatch(stem)
    return (match["patient"], match["eye"].lower()) if match else (stem, "")


PATIENT_COLUMNS = ("image", "patient", "eye")


def read_patients(path: str) -> dict[str, tuple[str, str]]:
    """Image file name (without folder) -> (patient, eye) from a CSV with `PATIENT_COLUMNS`.

    Raises
    ------
    ValueError
        Naming the file: a missing column, an empty patient, or an image listed twice.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in PATIENT_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        found: dict[str, tuple[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            image, patient = Path(row["image"]).name, row["patient"].strip()
            if not patient:
                raise ValueError(f"{path}, line {line}: empty patient for {image!r}")
            if image in found:
                raise ValueError(f"{path}, line {line}: {image!r} is listed twice")
            found[image] = (patient, row["eye"].strip().lower())
    return found


def operating_point(run_or_model: str, sensitivity: float) -> OperatingPoint:
    """The run's validation threshold at ``sensitivity`` (``metrics.json`` next to the model),
    or the probability rule when the run has none."""
    path = Path(run_or_model)
    metrics_file = RunDirectory(path if path.is_dir() else path.parent).metrics_file
    key = f"{sensitivity:.2f}"
    if metrics_file.is_file():
        screening = json.loads(metrics_file.read_text()).get("screening", {})
        points = (screening.get("referable_dr") or {}).get("operating_points", {})
        if key in points:
            threshold = float(points[key]["threshold"])
            return OperatingPoint(
                threshold,
                f"grade ≥ {threshold:.3f}, the threshold of validation sensitivity {key} "
                f"({metrics_file})",
            )
    return OperatingPoint(
        None, f"referable probability ≥ 0.5 (no validation operating point {key} in the run)"
    )


def eye_decision(gradable: bool, grade: float, probability: float, rule: OperatingPoint) -> str:
    """One photograph's decision."""
    if not gradable:
        return CANNOT_GRADE
    return REFER if rule.refers(grade, probability) else DO_NOT_REFER


def patients(eyes: Sequence[EyeResult]) -> list[PatientResult]:
    """Eyes grouped by patient, in order of first photograph."""
    grouped: dict[str, list[EyeResult]] = {}
    for eye in eyes:
        grouped.setdefault(eye.patient, []).append(eye)
    results = []
    for patient, members in grouped.items():
        decisions = {eye.decision for eye in members}
        decision = next(d for d in DECISIONS if d in decisions)
        results.append(
            PatientResult(
                patient=patient,
                decision=decision,
                referable_probability=max(e.referable_probability for e in members),
                uncertainty=max(e.uncertainty for e in members),
                quality=min(e.quality for e in members),
                eyes=tuple(sorted(members, key=lambda e: e.eye)),
            )
        )
    return results


def _embedded(path: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drscreen referral report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.4em; text-align: left; vertical-align: top; }}
th {{ cursor: pointer; background: #eee; }}
.refer {{ color: #b00; font-weight: bold; }} .cannot-grade {{ color: #a60; font-weight: bold; }}
img {{ width: 520px; max-width: 45vw; }}
</style></head><body>
<h1>drscreen referral report</h1>
<p>{patients} patients, {photographs} photographs. Referral rule: {rule}.
Click a column to sort.</p>
<table id="patients"><thead><tr>
<th data-key="order">decision</th><th data-key="patient">patient</th>
<th data-key="probability">referable probability</th><th data-key="uncertainty">uncertainty</th>
<th data-key="quality">quality</th><th>eyes (photograph | heatmap; lesion probability when
the model has a lesion student)</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
document.querySelectorAll("th[data-key]").forEach(function (header) {{
  header.addEventListener("click", function () {{
    var key = header.dataset.key, body = document.querySelector("#patients tbody");
    var rows = Array.from(body.rows), numeric = key !== "patient";
    rows.sort(function (a, b) {{
      var x = a.dataset[key], y = b.dataset[key];
      return numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    }});
    if (header.dataset.descending === "1") {{ rows.reverse(); }}
    header.dataset.descending = header.dataset.descending === "1" ? "0" : "1";
    rows.forEach(function (row) {{ body.appendChild(row); }});
  }});
}});
</script></body></html>
"""


def _images(eye: EyeResult) -> str:
    """The eye's heatmap panel, and its lesion-map panel when it has one."""
    name = html.escape(Path(eye.image).name)
    shown = f'<img alt="{name}" src="{_embedded(eye.overlay_path)}">'
    if eye.lesions_path:
        shown += f'<br><img alt="{name}, lesions" src="{_embedded(eye.lesions_path)}">'
    return shown


def _row(patient: PatientResult) -> str:
    eyes = "".join(
        f"<div><b>{html.escape(eye.eye or 'eye unknown')}</b>: {html.escape(eye.decision)}, "
        f"probability {eye.referable_probability:.3f}, quality {eye.quality:.3f}<br>"
        f"{_images(eye)}</div>"
        for eye in patient.eyes
    )
    css = patient.decision.replace(" ", "-")
    return (
        f'<tr data-order="{DECISIONS.index(patient.decision)}" '
        f'data-patient="{html.escape(patient.patient)}" '
        f'data-probability="{patient.referable_probability:.6f}" '
        f'data-uncertainty="{patient.uncertainty:.6f}" data-quality="{patient.quality:.6f}">'
        f'<td class="{css}">{html.escape(patient.decision)}</td>'
        f"<td>{html.escape(patient.patient)}</td><td>{patient.referable_probability:.3f}</td>"
        f"<td>{patient.uncertainty:.3f}</td><td>{patient.quality:.3f}</td><td>{eyes}</td></tr>"
    )


def write_report(results: Sequence[PatientResult], rule: OperatingPoint, out_dir: str) -> str:
    """Write ``report.html`` (patients ordered refer, cannot grade, do not refer)."""
    ordered = sorted(results, key=lambda p: (DECISIONS.index(p.decision), p.patient))
    page = _PAGE.format(
        patients=len(ordered),
        photographs=sum(len(p.eyes) for p in ordered),
        rule=html.escape(rule.description),
        rows="\n".join(_row(p) for p in ordered),
    )
    path = Path(out_dir) / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return str(path)
