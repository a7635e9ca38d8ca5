"""The per-patient referral decision of `drscreen predict`, and its ``report.html``.

Photographs are grouped by patient and eye from a CSV with ``image``, ``patient`` and ``eye``
columns when given (`read_patients`), else from Kaggle-style names (``<patient>_left``,
``<patient>_right``; any other name is its own patient, eye unknown). Each photograph gets
**cannot grade** (the file could not be used, or the gradability gate refused it: the reason
is shown, never a probability), **refer** (its grade at or above the run's operating point:
the validation threshold of the requested sensitivity in the run's ``metrics.json``; without
one, a referable probability of at least 0.5) or **do not refer**. A patient is referred when
an eye is, cannot be graded when no eye is referred and one cannot be graded, and is not
referred otherwise; the patient's figures are those of the eye that decides (the referred or
highest-probability eye; for cannot grade, the refused one, which has no probability).

``report.html`` is one self-contained page listing every patient and every photograph,
sortable by decision: each graded photograph is embedded as a JPEG drawn at display size
(`DISPLAY_SIDE`, so the colour scale's labels are read at their own pixel size), linked to the
full-resolution overlay beside the page (the lesion student's panel under the heatmap's when
the model has one). A model card (`drscreen.models.model_card`) heads it.
"""

import base64
import csv
import dataclasses
import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from drscreen.models.runs import RunDirectory

REFER, CANNOT_GRADE, DO_NOT_REFER = "refer", "cannot grade", "do not refer"
DECISIONS = (REFER, CANNOT_GRADE, DO_NOT_REFER)
"""Decisions in the report's default order: who needs a grader first."""
REPORT_FILE = "report.html"
DISPLAY_SIDE = 320
"""Longest side of each photograph in the page's overlays, drawn at this size (not shrunk by
the browser), so a 1200 px wide window shows the colour scale's labels at their own size."""
JPEG_QUALITY = 85
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
    """One photograph of a patient, as the report shows it.

    ``referable_probability`` and ``uncertainty`` are None unless the photograph was graded;
    ``quality`` is None when the file could not be used; ``reason`` says why a photograph
    cannot be graded; ``overlay_path`` (the full-resolution panel) and ``preview`` (its JPEG
    at display size) are empty when there is no overlay.
    """

    image: str
    patient: str
    eye: str
    decision: str
    reason: str = ""
    referable_probability: float | None = None
    uncertainty: float | None = None
    quality: float | None = None
    overlay_path: str = ""
    preview: bytes = b""
    lesions_path: str = ""
    """The lesion-map panel, "" without a lesion student."""
    lesions_preview: bytes = b""


@dataclasses.dataclass(frozen=True)
class PatientResult:
    """A patient's decision, the figures of the eye that decides it, and every eye."""

    patient: str
    decision: str
    deciding_eye: EyeResult
    eyes: tuple[EyeResult, ...]

    @property
    def referable_probability(self) -> float | None:
        return self.deciding_eye.referable_probability

    @property
    def uncertainty(self) -> float | None:
        return self.deciding_eye.uncertainty

    @property
    def quality(self) -> float | None:
        return self.deciding_eye.quality


def preview_jpeg(panel: np.ndarray) -> bytes:
    """The JPEG of an overlay panel (uint8 RGB) drawn at display size, as the page embeds it."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(panel, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError(f"cannot JPEG-encode a panel of shape {panel.shape}")
    return encoded.tobytes()


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
        Naming the file: a missing column, an empty patient, an image listed twice, or a
        file that is not UTF-8 text.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _patients_of(csv.DictReader(f), path)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8"
        ) from None


def _patients_of(reader: csv.DictReader, path: str) -> dict[str, tuple[str, str]]:
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
    """One decoded photograph's decision."""
    if not gradable:
        return CANNOT_GRADE
    return REFER if rule.refers(grade, probability) else DO_NOT_REFER


def _deciding_eye(decision: str, members: Sequence[EyeResult]) -> EyeResult:
    """The eye behind the patient's decision: of the eyes with that decision, the one with
    the highest probability (refer, do not refer) or the lowest quality (cannot grade; a file
    that could not be read comes first)."""
    candidates = [eye for eye in members if eye.decision == decision]
    if decision == CANNOT_GRADE:
        return min(candidates, key=lambda e: -1.0 if e.quality is None else e.quality)
    return max(candidates, key=lambda e: e.referable_probability)


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
                deciding_eye=_deciding_eye(decision, members),
                eyes=tuple(sorted(members, key=lambda e: (e.eye, e.image))),
            )
        )
    return results


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drscreen referral report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.4em; text-align: left; vertical-align: top; }}
th {{ cursor: pointer; background: #eee; }}
.refer {{ color: #b00; font-weight: bold; }} .cannot-grade {{ color: #a60; font-weight: bold; }}
.card {{ border: 1px solid #999; padding: 0.5em 1em; margin-bottom: 1em; max-width: 60em; }}
.warning {{ background: #fdd; border: 2px solid #b00; padding: 0.5em 1em; font-weight: bold; }}
img {{ display: block; max-width: none; }}
</style></head><body>
<h1>drscreen referral report</h1>
{card}
<p>{patients} patients, {photographs} photographs ({ungraded} cannot be graded). Referral rule:
{rule}. Click a column to sort.</p>
<table id="patients"><thead><tr>
<th data-key="order">decision</th><th data-key="patient">patient</th>
<th data-key="probability">referable probability</th><th data-key="uncertainty">uncertainty</th>
<th data-key="quality">quality</th><th>eyes (photograph | heatmap | scale; lesion probability
when the model has a lesion student)</th></tr></thead>
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


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _sort_key(value: float | None) -> str:
    """A ``data-`` value that sorts numerically; a missing figure sorts below every value."""
    return "-1" if value is None else f"{value:.6f}"


def _eye(eye: EyeResult, out_dir: str) -> str:
    name = html.escape(Path(eye.image).name)
    side = html.escape(eye.eye or "eye unknown")
    if eye.decision == CANNOT_GRADE:
        text = f"<b>{side}</b> {name}: cannot grade — {html.escape(eye.reason)}"
    else:
        text = (
            f"<b>{side}</b> {name}: {html.escape(eye.decision)}, probability "
            f"{eye.referable_probability:.3f}, uncertainty {eye.uncertainty:.3f}, quality "
            f"{eye.quality:.3f}"
        )
    if not eye.preview:
        return f"<div>{text}</div>"
    data = base64.b64encode(eye.preview).decode("ascii")
    link = html.escape(os.path.relpath(eye.overlay_path, out_dir)) if eye.overlay_path else ""
    image = f'<img alt="{name}" src="data:image/jpeg;base64,{data}">'
    if link:
        image = f'<a href="{link}" title="full resolution">{image}</a>'
    if eye.lesions_preview:
        lesions = base64.b64encode(eye.lesions_preview).decode("ascii")
        target = html.escape(os.path.relpath(eye.lesions_path, out_dir))
        image += (
            f'<br><a href="{target}" title="full resolution">'
            f'<img alt="{name}, lesions" src="data:image/jpeg;base64,{lesions}"></a>'
        )
    return f"<div>{text}<br>{image}</div>"


def _row(patient: PatientResult, out_dir: str) -> str:
    eyes = "".join(_eye(eye, out_dir) for eye in patient.eyes)
    css = patient.decision.replace(" ", "-")
    return (
        f'<tr data-order="{DECISIONS.index(patient.decision)}" '
        f'data-patient="{html.escape(patient.patient)}" '
        f'data-probability="{_sort_key(patient.referable_probability)}" '
        f'data-uncertainty="{_sort_key(patient.uncertainty)}" '
        f'data-quality="{_sort_key(patient.quality)}">'
        f'<td class="{css}">{html.escape(patient.decision)}</td>'
        f"<td>{html.escape(patient.patient)}</td><td>{_figure(patient.referable_probability)}"
        f"</td><td>{_figure(patient.uncertainty)}</td><td>{_figure(patient.quality)}</td>"
        f"<td>{eyes}</td></tr>"
    )


def render_report(
    results: Sequence[PatientResult], rule: OperatingPoint, out_dir: str, card_html: str = ""
) -> str:
    """The page: patients ordered refer, cannot grade, do not refer, then by name.

    ``out_dir`` is where the page is written (overlay links are relative to it);
    ``card_html`` is the model card's HTML (`drscreen.models.model_card.card_html`).
    """
    ordered = sorted(results, key=lambda p: (DECISIONS.index(p.decision), p.patient))
    eyes = [eye for patient in ordered for eye in patient.eyes]
    return _PAGE.format(
        card=card_html,
        patients=len(ordered),
        photographs=len(eyes),
        ungraded=sum(eye.decision == CANNOT_GRADE for eye in eyes),
        rule=html.escape(rule.description),
        rows="\n".join(_row(p, out_dir) for p in ordered),
    )


def write_report(
    results: Sequence[PatientResult], rule: OperatingPoint, out_dir: str, card_html: str = ""
) -> str:
    """Write `render_report`'s page as ``out_dir/report.html``; its path."""
    path = Path(out_dir) / REPORT_FILE
    path.write_text(render_report(results, rule, out_dir, card_html), encoding="utf-8")
    return str(path)
