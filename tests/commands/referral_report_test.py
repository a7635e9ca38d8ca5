"""The per-patient referral report: names, decisions by hand, the run's operating point, and
the page rendered by a real headless browser."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from drscreen.commands import referral_report as rr


def test_patient_and_eye_from_kaggle_names():
    assert rr.patient_and_eye("/data/10_left.jpeg") == ("10", "left")
    assert rr.patient_and_eye("13_RIGHT.png") == ("13", "right")
    assert rr.patient_and_eye("scan_0042.tif") == ("scan_0042", "")
    assert rr.patient_and_eye("a_b_left.jpg") == ("a_b", "left")


def test_operating_point_is_the_runs_validation_threshold(tmp_path):
    metrics = {"screening": {"referable_dr": {"operating_points": {"0.90": {"threshold": 1.25}}}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "best.keras").write_text("")
    for given in (str(tmp_path), str(tmp_path / "best.keras")):
        rule = rr.operating_point(given, 0.90)
        assert rule.threshold == 1.25 and "validation sensitivity 0.90" in rule.description
        assert rule.refers(1.25, 0.0) and not rule.refers(1.2499, 1.0)
    fallback = rr.operating_point(str(tmp_path), 0.95)  # no such point: probability rule
    assert fallback.threshold is None and fallback.refers(0.0, 0.5) and not fallback.refers(9, 0.4)


def _eye(image, decision, probability=0.5, uncertainty=0.1, quality=0.9, overlay=""):
    patient, eye = rr.patient_and_eye(image)
    return rr.EyeResult(image, patient, eye, decision, probability, uncertainty, quality, overlay)


def test_patients_csv_is_read_and_checked(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("image,patient,eye\nphotos/a.jpg,P1,LEFT\nb.jpg,P1,right\n")
    assert rr.read_patients(str(path)) == {"a.jpg": ("P1", "left"), "b.jpg": ("P1", "right")}
    path.write_text("image,patient\na.jpg,P1\n")
    with pytest.raises(ValueError, match="patients.csv: missing column"):
        rr.read_patients(str(path))
    path.write_text("image,patient,eye\na.jpg,,left\n")
    with pytest.raises(ValueError, match="line 2: empty patient"):
        rr.read_patients(str(path))
    path.write_text("image,patient,eye\na.jpg,P1,left\nx/a.jpg,P2,left\n")
    with pytest.raises(ValueError, match="line 3: 'a.jpg' is listed twice"):
        rr.read_patients(str(path))


def test_decisions_per_eye_and_patient_by_hand():
    rule = rr.OperatingPoint(1.5, "grade ≥ 1.5")
    assert rr.eye_decision(False, 4.0, 1.0, rule) == rr.CANNOT_GRADE  # the gate wins
    assert rr.eye_decision(True, 1.5, 0.1, rule) == rr.REFER
    assert rr.eye_decision(True, 1.4, 0.9, rule) == rr.DO_NOT_REFER
    eyes = [
        _eye("1_left.jpg", rr.DO_NOT_REFER, 0.2, 0.05, 0.9),
        _eye("1_right.jpg", rr.REFER, 0.8, 0.20, 0.7),
        _eye("2_left.jpg", rr.CANNOT_GRADE, 0.1, 0.30, 0.2),
        _eye("2_right.jpg", rr.DO_NOT_REFER),
        _eye("3_left.jpg", rr.DO_NOT_REFER),
        _eye("3_right.jpg", rr.DO_NOT_REFER),
    ]
    results = {p.patient: p for p in rr.patients(eyes)}
    assert {k: p.decision for k, p in results.items()} == {
        "1": rr.REFER,
        "2": rr.CANNOT_GRADE,
        "3": rr.DO_NOT_REFER,
    }
    one = results["1"]
    assert (one.referable_probability, one.uncertainty, one.quality) == (0.8, 0.20, 0.7)
    assert [e.eye for e in one.eyes] == ["left", "right"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
def test_report_renders_every_patient_in_a_headless_browser(tmp_path):
    """Chromium loads the self-contained page: every patient and decision is in the rendered
    DOM, the overlays are embedded, and a screenshot is written (looked at by hand)."""
    rng = np.random.default_rng(0)
    overlay = tmp_path / "panel.png"
    Image.fromarray(rng.integers(0, 255, (60, 120, 3), dtype=np.uint8)).save(overlay)
    eyes = [
        _eye(f"{patient}_{side}.jpg", decision, overlay=str(overlay))
        for patient, decision in (("7", rr.DO_NOT_REFER), ("8", rr.REFER), ("9", rr.CANNOT_GRADE))
        for side in ("left", "right")
    ]
    rule = rr.OperatingPoint(1.0, "grade ≥ 1.000")
    path = rr.write_report(rr.patients(eyes), rule, str(tmp_path))
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(
        [*command, "--dump-dom", f"file://{path}"], capture_output=True, text=True, timeout=120
    ).stdout
    rows = dom.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert [r.split('data-patient="')[1].split('"')[0] for r in rows] == ["8", "9", "7"]
    assert dom.count("data:image/png;base64,") == 6
    assert "grade ≥ 1.000" in dom and "cannot grade" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*command, f"--screenshot={screenshot}", "--window-size=1280,900", f"file://{path}"],
        capture_output=True,
        timeout=120,
    )
    assert Image.open(screenshot).size == (1280, 900)
