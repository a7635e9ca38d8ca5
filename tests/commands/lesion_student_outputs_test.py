"""A run with a lesion student: predict's lesion panels and report, evaluate's row and gallery."""

import csv
import json
import os

import cv2
import keras
import numpy as np
import pytest

from drscreen import cli
from drscreen.data.fundus import crop_to_field_of_view, field_of_view_box, field_of_view_mask
from drscreen.data.image_io import load_rgb
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation.lesion_student import probable_lesions
from drscreen.heatmaps.overlay import photograph_panel
from drscreen.models import build
from drscreen.models.runs import RunDirectory
from tests.students import scaled_student

SIZE = 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=8, size=SIZE, seed=5), folder, 1, progress=False)
    return str(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the same model: with and without lesions.keras."""
    keras.utils.set_random_seed(7)
    model = build("small", input_size=SIZE, width=4)
    with_student = RunDirectory(tmp_path_factory.mktemp("with_student"))
    without = RunDirectory(tmp_path_factory.mktemp("without_student"))
    for run in (with_student, without):
        model.save(run.model_file)
    scaled_student(SIZE).save(with_student.lesions_file)
    return with_student, without


def _command(name: str, *arguments: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", name, *arguments])
    assert exit_info.value.code in (0, None)


def test_predict_draws_the_lesion_probability_and_rings_probable_lesions(runs, data_dir, tmp_path):
    """<stem>_lesions.png is the student's FOV-masked map of the crop on a 0-1 scale with its
    peaks >= 0.5 ringed; report.html shows it under the heatmap; no student, no panel."""
    with_student, without = runs
    student = scaled_student(SIZE)
    out = tmp_path / "out"
    _command(
        "predict", f"--model={with_student.path}", f"--images={data_dir}/train", f"--out={out}"
    )
    with open(out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    ringed = 0
    for row in rows:
        path, gradable = row["image"], row["gradable"] == "1"
        original = load_rgb(path)
        image, fov = crop_to_field_of_view(original, SIZE)
        probability = student.predict(image.numpy()[np.newaxis], verbose=0)[0, ..., 0]
        probability = probability * fov.numpy()
        marks = probable_lesions(probability, fov.numpy() > 0.5) if gradable else None
        ringed += 0 if marks is None else len(marks)
        box = tuple(field_of_view_box(field_of_view_mask(original)).numpy())
        expected = photograph_panel(original, probability, box, fov, candidates=marks, top=1.0)
        name = os.path.splitext(os.path.basename(path))[0]
        panel = cv2.cvtColor(cv2.imread(str(out / f"{name}_lesions.png")), cv2.COLOR_BGR2RGB)
        assert panel.shape == expected.shape
        assert np.abs(panel.astype(int) - expected.astype(int)).max() <= 2
    assert ringed > 0
    report = (out / "report.html").read_text()
    assert report.count("<img ") == 2 * len(rows) and report.count(', lesions"') == len(rows)
    plain = tmp_path / "plain"
    _command("predict", f"--model={without.path}", f"--images={data_dir}/train", f"--out={plain}")
    assert not list(plain.glob("*_lesions.png"))
    assert (plain / "report.html").read_text().count("<img ") == len(rows)


def test_evaluate_scores_the_students_map_as_a_row_with_its_gallery(runs, data_dir, tmp_path):
    """The 'lesions' row beside the heatmap methods (its own figures), the comparison's
    student row, and a gallery of the student's maps on their photographs."""
    with_student, _ = runs
    out = tmp_path / "eval"
    _command(
        "evaluate", f"--model={with_student.path}", f"--data={data_dir}",
        f"--validation_data={data_dir}", "--split=all", f"--out={out}", "--gallery=4",
        "--perturbation_images=0", "--n_bootstrap=10",
    )  # fmt: skip
    written = json.loads((out / "metrics.json").read_text())
    methods = written["metrics"]["methods"]
    assert list(methods) == ["sensitivity", "lesions"]
    mass = "relevance_mass/all_lesions"
    assert 0.0 <= methods["lesions"][mass] <= 1.0
    assert methods["lesions"][mass] != methods["sensitivity"][mass]
    assert "froc_score" in methods["lesions"]["lesions"]["red_lesions"]
    labels = [row["method"] for row in written["comparison"]]
    assert labels[1].startswith("Lesion student")
    assert "lesions.keras" in written["context"]["lesion map"]
    report_text = (out / "report.md").read_text()
    assert "](lesions_gallery.png)" in report_text
    originals = [load_rgb(record.image_path) for record in read_dataset("synthetic", data_dir)]
    photographs = [original.repeat(8, axis=0).repeat(8, axis=1) for original in originals]
    # the colour scale of a probability: 0 to 1, not the heatmaps' "low" to "high"
    scale = photograph_panel(originals[0], np.zeros((SIZE, SIZE)), (0, 0, SIZE), top=1.0)
    for number in range(1, 5):
        name = f"gallery/lesions_case_{number:02d}.png"
        assert f"]({name})" in report_text
        panel = cv2.cvtColor(cv2.imread(str(out / name)), cv2.COLOR_BGR2RGB)
        assert any(np.array_equal(panel[:, :512], photograph) for photograph in photographs)
        np.testing.assert_array_equal(panel[:, -60:], scale[:, -60:])
