"""`drscreen evaluate` over the bad-input matrix: every case gets its expected outcome."""

import contextlib
import csv
import io
import json
import os

import pytest

from drscreen import cli
from drscreen.models import build
from tests import bad_inputs


def _image_id(index: int, name: str) -> str:
    return "œil gauche é_left" if name == "unicode and space name" else f"{index}_left"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One `drscreen evaluate` run over a Kaggle-layout folder holding every case of the
    matrix, evaluated and validated on all of it: exit code, outputs and standard error."""
    root = tmp_path_factory.mktemp("matrix")
    build("small", input_size=64, width=4).save(str(root / "model.keras"))
    cases = bad_inputs.cases()
    train = root / "kaggle" / "train"
    train.mkdir(parents=True)
    ids = {name: _image_id(index, name) for index, name in enumerate(cases)}
    for name, case in cases.items():
        (train / f"{ids[name]}.jpeg").write_bytes(case.data)
    rows = ["image,level", *(f"{ids[name]},{index % 5}" for index, name in enumerate(cases))]
    (root / "kaggle" / "trainLabels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out, data = root / "out", root / "kaggle"
    argv = ["drscreen", "evaluate", f"--model={root / 'model.keras'}", f"--data={data}"]
    argv += ["--dataset=kaggle", f"--validation_data={data}", "--split=all", f"--out={out}"]
    argv += ["--batch_size=4", "--gallery=2", "--perturbation_images=0", "--n_bootstrap=10"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    with open(out / "predictions.csv", encoding="utf-8") as f:
        grades = {r["image_id"]: float(r["predicted_grade"]) for r in csv.DictReader(f)}
    return {
        "code": exit_info.value.code,
        "metrics": json.loads((out / "metrics.json").read_text(encoding="utf-8")),
        "grades": grades,
        "report": (out / "report.md").read_text(encoding="utf-8"),
        "stderr": stderr.getvalue(),
        "ids": ids,
    }


def test_evaluate_finishes_and_counts_the_usable_photographs(result):
    """Bad photographs never stop the run: it exits 0 and evaluates exactly the accepted ones."""
    assert result["code"] in (0, None)
    accepted = {result["ids"][name] for name in bad_inputs.accepted()}
    assert set(result["grades"]) == accepted
    assert result["metrics"]["metrics"]["evaluated"]["images"] == len(accepted)
    assert result["metrics"]["metrics"]["validation"]["images"] == len(accepted)


@pytest.mark.parametrize("name", sorted(bad_inputs.cases()))
def test_evaluate_gives_each_case_its_outcome(result, name):
    """A rejected case is named with its reason on the terminal, in metrics.json (evaluated
    and validation images) and in report.md, and gets no score; an accepted one is scored,
    and a photograph stored differently (trailing bytes, 16 bits, alpha, EXIF, unicode name)
    gets the score of the original."""
    case = bad_inputs.cases()[name]
    image_id = result["ids"][name]
    file_name = f"{image_id}.jpeg"
    metrics = result["metrics"]["metrics"]
    for part in ("evaluated", "validation"):
        skipped = {os.path.basename(s["image"]): s["reason"] for s in metrics[part]["skipped"]}
        if case.reason is None:
            assert file_name not in skipped
        else:
            assert case.reason in skipped[file_name]
    if case.reason is not None:
        assert image_id not in result["grades"]
        assert any(
            file_name in line and case.reason in line for line in result["stderr"].splitlines()
        )
        assert any(
            file_name in line and case.reason in line for line in result["report"].splitlines()
        )
        return
    if case.same_as:
        reference = result["ids"][case.same_as]
        assert result["grades"][image_id] == pytest.approx(result["grades"][reference], abs=1e-5)


def test_a_latin1_label_file_is_named(tmp_path):
    """A label file saved as Latin-1: the error names the file and says what is wrong."""
    build("small", input_size=64, width=4).save(str(tmp_path / "model.keras"))
    data = tmp_path / "kaggle"
    (data / "train").mkdir(parents=True)
    (data / "trainLabels.csv").write_bytes("image,level\nélodie_left,2\n".encode("latin-1"))
    argv = ["drscreen", "evaluate", f"--model={tmp_path / 'model.keras'}", f"--data={data}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--dataset=kaggle", "--split=all", f"--out={tmp_path / 'out'}"])
    assert str(exit_info.value.code) == (
        f"drscreen evaluate: {data / 'trainLabels.csv'}: not UTF-8 text (byte 0xe9 at offset "
        "12); save the label file as UTF-8"
    )
