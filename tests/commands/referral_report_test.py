"""The per-patient referral report: names, decisions by hand, the run's operating point, and
the page rendered by a real headless browser."""

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drscreen.commands import referral_report as rr
from drscreen.data.fundus import crop_to_field_of_view_box
from drscreen.data.synthetic import SynthConfig
from drscreen.data.synthetic.generator import generate_fundus
from drscreen.heatmaps.overlay import photograph_panel


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


def _eye(image, decision, probability=0.5, uncertainty=0.1, quality=0.9, preview=b""):
    patient, eye = rr.patient_and_eye(image)
    if decision == rr.CANNOT_GRADE:
        return rr.EyeResult(image, patient, eye, decision, "quality too low", quality=quality)
    return rr.EyeResult(
        image, patient, eye, decision, "", probability, uncertainty, quality, "", preview
    )


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
    """A patient's decision, and its figures all from the eye that decides it."""
    rule = rr.OperatingPoint(1.5, "grade ≥ 1.5")
    assert rr.eye_decision(False, 4.0, 1.0, rule) == rr.CANNOT_GRADE  # the gate wins
    assert rr.eye_decision(True, 1.5, 0.1, rule) == rr.REFER
    assert rr.eye_decision(True, 1.4, 0.9, rule) == rr.DO_NOT_REFER
    eyes = [
        _eye("1_left.jpg", rr.DO_NOT_REFER, 0.2, 0.35, 0.9),
        _eye("1_right.jpg", rr.REFER, 0.8, 0.20, 0.7),
        _eye("2_left.jpg", rr.CANNOT_GRADE, quality=0.2),
        _eye("2_right.jpg", rr.DO_NOT_REFER, 0.3, 0.4, 0.95),
        _eye("3_left.jpg", rr.DO_NOT_REFER, 0.1, 0.05, 0.8),
        _eye("3_right.jpg", rr.DO_NOT_REFER, 0.4, 0.02, 0.6),
        rr.EyeResult("4_left.jpg", "4", "left", rr.CANNOT_GRADE, "not a decodable image"),
        _eye("4_right.jpg", rr.CANNOT_GRADE, quality=0.1),
    ]
    results = {p.patient: p for p in rr.patients(eyes)}
    assert {k: p.decision for k, p in results.items()} == {
        "1": rr.REFER,
        "2": rr.CANNOT_GRADE,
        "3": rr.DO_NOT_REFER,
        "4": rr.CANNOT_GRADE,
    }
    figures = {k: (p.referable_probability, p.uncertainty, p.quality) for k, p in results.items()}
    assert figures == {
        "1": (0.8, 0.20, 0.7),  # the referred eye's, not the other's larger uncertainty
        "2": (None, None, 0.2),  # the ungradable eye decides: no probability
        "3": (0.4, 0.02, 0.6),  # the higher-probability eye
        "4": (None, None, None),  # the unreadable file comes first
    }
    assert [e.eye for e in results["1"].eyes] == ["left", "right"]


def test_the_page_orders_patients_and_shows_no_probability_for_refused_eyes(tmp_path):
    """The static page: rows refer, cannot grade, do not refer (then by name); a refused eye
    shows its reason and no probability; the model card and its warning head the page."""
    eyes = [
        _eye("7_left.jpg", rr.DO_NOT_REFER, 0.2),
        _eye("8_left.jpg", rr.REFER, 0.9),
        _eye("9_left.jpg", rr.CANNOT_GRADE, quality=0.3),
        _eye("5_left.jpg", rr.REFER, 0.7),
        rr.EyeResult("6_left.jpg", "6", "left", rr.CANNOT_GRADE, "grayscale, expected a colour"),
    ]
    card = '<p class="warning">Warning: trained on synthetic photographs.</p>'
    page = rr.render_report(rr.patients(eyes), rr.OperatingPoint(1.0, "rule"), str(tmp_path), card)
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert [r.split('data-patient="')[1].split('"')[0] for r in rows] == ["5", "8", "6", "9", "7"]
    refused = rows[3]
    assert "9_left.jpg: cannot grade — quality too low" in refused
    assert "probability" not in refused.split("<td>9</td>")[1]
    assert 'data-probability="-1"' in refused and "<td>–</td>" in refused
    assert "6_left.jpg: cannot grade — grayscale" in rows[2]
    assert page.index(card) < page.index("<table")
    assert "5 patients, 5 photographs (2 cannot be graded)" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _noise_preview(seed: int) -> bytes:
    """A JPEG the size of the page's overlays, of noise: JPEG's worst case."""
    rng = np.random.default_rng(seed)
    panel = rng.integers(0, 255, (rr.DISPLAY_SIDE, 2 * rr.DISPLAY_SIDE + 88, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(panel).save(buffer, "JPEG", quality=rr.JPEG_QUALITY)
    return buffer.getvalue()


def _fundus_preview(seed: int) -> bytes:
    """The page's overlay of a synthetic 1024 px photograph, drawn as `drscreen predict`
    draws it (photograph_panel at display size, JPEG)."""
    fundus = generate_fundus(SynthConfig.from_preset("standard", n=1, size=1024, seed=seed), 0)
    _, mask, box = crop_to_field_of_view_box(fundus.image, 64)
    heatmap = np.random.default_rng(seed).random((64, 64))
    side = rr.DISPLAY_SIDE
    panel = photograph_panel(
        fundus.image, heatmap, tuple(int(v) for v in box.numpy()), mask.numpy(),
        max_side=side, min_side=side,
    )  # fmt: skip
    return rr.preview_jpeg(panel)


def test_each_photograph_costs_the_page_less_than_250_kb(tmp_path):
    """Even noise (JPEG's worst case) at display size adds under 250 kB (base64) per
    photograph; a synthetic 1024 px fundus adds under 60 kB."""
    rule = rr.OperatingPoint(1.0, "rule")
    for preview, limit in ((_noise_preview(0), 250_000), (_fundus_preview(1), 60_000)):
        one = rr.render_report(rr.patients([_eye("1_left.jpg", rr.REFER, preview=preview)]),
                               rule, str(tmp_path))  # fmt: skip
        none = rr.render_report(rr.patients([_eye("1_left.jpg", rr.REFER)]), rule, str(tmp_path))
        assert 0 < len(one.encode()) - len(none.encode()) < limit


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
def test_a_days_report_of_500_photographs_loads_in_a_headless_browser(tmp_path):
    """Chromium loads a page of 250 patients (500 photographs, each embedded as a JPEG at
    display size): every patient is in the rendered DOM, in decision order, and a screenshot
    of a 1200 px wide window is taken."""
    previews = [_fundus_preview(seed) for seed in range(2)]
    decisions = (rr.DO_NOT_REFER, rr.REFER, rr.CANNOT_GRADE)
    eyes = [
        _eye(f"{patient}_{side}.jpg", decisions[patient % 3], 0.1 + patient / 1000,
             preview=previews[patient % 2])
        if decisions[patient % 3] != rr.CANNOT_GRADE
        else _eye(f"{patient}_{side}.jpg", rr.CANNOT_GRADE, quality=0.2)
        for patient in range(250)
        for side in ("left", "right")
    ]  # fmt: skip
    rule = rr.OperatingPoint(1.0, "grade ≥ 1.000")
    path = rr.write_report(rr.patients(eyes), rule, str(tmp_path))
    assert Path(path).stat().st_size < 60_000 * len(eyes)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(
        [*command, "--dump-dom", f"file://{path}"], capture_output=True, text=True, timeout=300
    ).stdout
    rows = dom.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    shown = [r.split('data-patient="')[1].split('"')[0] for r in rows]
    order = {rr.REFER: 0, rr.CANNOT_GRADE: 1, rr.DO_NOT_REFER: 2}
    expected = sorted(range(250), key=lambda p: (order[decisions[p % 3]], str(p)))
    assert shown == [str(p) for p in expected]
    assert dom.count("data:image/jpeg;base64,") == sum(1 for e in eyes if e.preview)
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*command, f"--screenshot={screenshot}", "--window-size=1200,900", f"file://{path}"],
        capture_output=True,
        timeout=300,
    )
    assert Image.open(screenshot).size == (1200, 900)
