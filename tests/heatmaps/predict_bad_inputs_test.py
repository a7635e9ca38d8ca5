"""`drscreen predict` over the bad-input matrix: every case gets its expected outcome."""

import csv
import os

import pytest

from drscreen import cli
from drscreen.models import build
from tests import bad_inputs


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """One `drscreen predict` run over a folder holding every case of the matrix."""
    root = tmp_path_factory.mktemp("matrix")
    build("small", input_size=64, width=4).save(str(root / "model.keras"))
    images = root / "images"
    images.mkdir()
    for case in bad_inputs.cases().values():
        (images / case.file_name).write_bytes(case.data)
    out = root / "out"
    argv = ["drscreen", "predict", f"--model={root / 'model.keras'}", f"--images={images}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={out}", "--batch_size=4"])
    assert exit_info.value.code in (0, None)
    with open(out / "predictions.csv", encoding="utf-8") as f:
        rows = {os.path.basename(r["image"]): r for r in csv.DictReader(f)}
    assert set(rows) == {case.file_name for case in bad_inputs.cases().values()}
    # raw_grade: the network's grade of every decoded photograph, whatever the gate says
    grades = {name: float(r["raw_grade"]) for name, r in rows.items() if r["raw_grade"]}
    failures = {name: r["reason"] for name, r in rows.items() if not r["raw_grade"]}
    return grades, failures


@pytest.mark.parametrize("name", sorted(bad_inputs.cases()))
def test_predict_gives_each_case_its_outcome(predicted, name):
    """Every case has a row; rejected ones have their reason; accepted ones are graded, and a
    photograph stored differently (trailing bytes, 16 bits, alpha, EXIF, unicode name)
    gets the grade of the original."""
    grades, failures = predicted
    case = bad_inputs.cases()[name]
    if case.reason is not None:
        assert case.file_name not in grades
        assert case.reason in failures[case.file_name]
        return
    assert case.file_name not in failures
    if case.same_as:
        reference = bad_inputs.cases()[case.same_as].file_name
        assert grades[case.file_name] == pytest.approx(grades[reference], abs=1e-6)
