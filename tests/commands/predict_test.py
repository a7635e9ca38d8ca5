"""Tests of `drscreen predict`: CSV, overlays and bad images, through the command line."""

import csv
import os

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import cli
from drscreen.commands.predict import PredictConfig, list_images
from drscreen.data.fundus import crop_to_field_of_view, field_of_view_box, field_of_view_mask
from drscreen.data.gradability import gradability_features
from drscreen.data.image_io import load_rgb
from drscreen.data.synthetic import SynthConfig
from drscreen.data.synthetic.generator import generate_fundus
from drscreen.evaluation.lesions import candidates_to_mark
from drscreen.heatmaps.overlay import CANDIDATE_COLOUR, photograph_panel
from drscreen.models import build, referable_probability
from drscreen.models.quality import default_quality_gate


def _fundus_png(path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48] - 23.5
    disc = (np.hypot(yy, xx) < 20)[..., None]
    image = (rng.uniform(40, 230, (48, 48, 3)) * disc).astype(np.uint8)
    cv2.imwrite(path, image)


def _model_output(model: keras.Model, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's grades of the four flips of the photograph cropped to its field of view
    (plain image first), the mean of their sensitivity heatmaps (sum_c |d grade / d pixel|,
    by tf.GradientTape) flipped back with numpy, and the FOV, computed here."""
    image, fov = crop_to_field_of_view(load_rgb(path), 64)
    flips = (lambda a: a, np.fliplr, np.flipud, lambda a: np.flipud(np.fliplr(a)))
    grades, heatmaps = [], []
    for flip in flips:
        images = tf.constant(flip(image.numpy())[np.newaxis].copy())
        with tf.GradientTape() as tape:
            tape.watch(images)
            grade = model(images, training=False)[0, 0]
        heatmap = tf.reduce_sum(tf.abs(tape.gradient(grade, images)), axis=-1)[0].numpy()
        grades.append(float(grade))
        heatmaps.append(flip(heatmap * flip(fov.numpy())))  # flips are their own inverses
    return np.array(grades), np.mean(heatmaps, axis=0), fov.numpy()


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with best.keras (small model, 64 px, width 4) and 3 images."""
    run = tmp_path / "run"
    run.mkdir()
    build("small", input_size=64, width=4).save(str(run / "best.keras"))
    images = tmp_path / "images"
    images.mkdir()
    _fundus_png(str(images / "a.png"), 0)
    _fundus_png(str(images / "b.png"), 1)
    with open(images / "c.jpg", "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 truncated")
    return tmp_path


def test_predict_command_writes_csv_overlays_and_failures(run_dir, capsys):
    """2 good images -> 2 CSV rows and overlays; the corrupt JPEG is listed with its reason."""
    out = run_dir / "out"
    argv = ["drscreen", "predict", f"--model={run_dir / 'run'}", f"--images={run_dir / 'images'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={out}", "--batch_size=2"])
    assert exit_info.value.code in (0, None)
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [os.path.basename(row["image"]) for row in rows] == ["a.png", "b.png"]
    model = keras.saving.load_model(run_dir / "run" / "best.keras")
    for row in rows:
        grades, heatmap, fov = _model_output(model, row["image"])
        assert float(row["grade"]) == pytest.approx(grades[0], abs=1e-5)
        probabilities = referable_probability(grades)
        assert float(row["referable_probability"]) == pytest.approx(probabilities[0], abs=1e-5)
        assert float(row["uncertainty"]) == pytest.approx(np.std(probabilities), abs=1e-5)
        image, _ = crop_to_field_of_view(load_rgb(row["image"]), 64)
        features = gradability_features(image[np.newaxis], fov[np.newaxis]).numpy()
        quality = float(default_quality_gate().quality(features)[0])
        assert float(row["quality"]) == pytest.approx(quality, abs=1e-5)
        assert row["gradable"] == str(int(quality > default_quality_gate().threshold))
        name = os.path.splitext(os.path.basename(row["image"]))[0]
        overlay = cv2.cvtColor(cv2.imread(str(out / f"{name}_heatmap.png")), cv2.COLOR_BGR2RGB)
        original = load_rgb(row["image"])
        box = tuple(field_of_view_box(field_of_view_mask(original)).numpy())
        marks = candidates_to_mark(heatmap, fov > 0.5) if row["gradable"] == "1" else None
        expected = photograph_panel(original, heatmap, box, fov, candidates=marks)
        difference = np.abs(overlay.astype(int) - expected.astype(int))
        # The 48 px photograph enlarged pixel by pixel to a readable 512 px (x 32/3):
        # photograph | heatmap on it | colour scale.
        assert heatmap.max() > 0 and overlay.shape == expected.shape and difference.max() <= 2
        assert overlay.shape[0] == 512 and overlay.shape[1] > 2 * 512
        enlarged = cv2.resize(original, (512, 512), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(overlay[:, :512], enlarged)
        # no metrics.json in this run: an eye is referred at probability >= 0.5
        expected_decision = (
            "cannot grade"
            if row["gradable"] == "0"
            else "refer"
            if float(row["referable_probability"]) >= 0.5
            else "do not refer"
        )
        assert (row["patient"], row["eye"], row["decision"]) == (name, "", expected_decision)
    report = (out / "report.html").read_text()
    assert report.count("<tr data-order=") == 2 and "no validation operating point" in report
    with open(out / "failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert len(failures) == 1 and failures[0]["image"].endswith("c.jpg")
    assert "truncated" in failures[0]["reason"]
    captured = capsys.readouterr()
    assert "drscreen predict: 3/3 images, 1 bad" in captured.err
    assert "skipped" in captured.err and "c.jpg" in captured.err


def test_patients_csv_groups_both_eyes_of_a_patient(run_dir):
    """With --patients_csv, a.png and b.png are the two eyes of one patient: one report row,
    the CSV's patient and eye in predictions.csv; a CSV missing a column is named."""
    listing = run_dir / "patients.csv"
    listing.write_text("image,patient,eye\na.png,P7,left\nb.png,P7,right\n")
    out = run_dir / "grouped"
    argv = ["drscreen", "predict", f"--model={run_dir / 'run'}", f"--images={run_dir / 'images'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={out}", f"--patients_csv={listing}"])
    assert exit_info.value.code in (0, None)
    with open(out / "predictions.csv") as f:
        assert [(r["patient"], r["eye"]) for r in csv.DictReader(f)] == [
            ("P7", "left"),
            ("P7", "right"),
        ]
    assert (out / "report.html").read_text().count("<tr data-order=") == 1
    listing.write_text("image,patient\na.png,P7\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={run_dir / 'bad'}", f"--patients_csv={listing}"])
    assert "patients.csv: missing column(s) eye" in str(exit_info.value.code)


def test_bad_configuration_is_named(run_dir):
    """Unknown method, bad batch size, missing model or images give clear errors."""
    with pytest.raises(ValueError, match="method 'x' is not one of sensitivity"):
        PredictConfig("m", "i", "o", method="x")
    with pytest.raises(ValueError, match="batch_size"):
        PredictConfig("m", "i", "o", batch_size=0)
    with pytest.raises(FileNotFoundError, match="no such image file or directory"):
        list_images(str(run_dir / "missing"))
    assert list_images(str(run_dir / "images" / "a.png")) == [str(run_dir / "images" / "a.png")]


def test_photographs_that_are_not_fundus_cannot_be_graded(tmp_path):
    """Images that decode but show no retina (a scene, a document, a texture, a lit disc from
    the synthetic generator's not-fundus captures) are "cannot grade" in predictions.csv and
    in the report, whatever the score; a gradable photograph beside them is graded."""
    config = SynthConfig.from_preset("screening", n=40, size=256, seed=5, ungradable_fraction=1.0)
    images = tmp_path / "images"
    images.mkdir()
    not_fundus = [
        f for f in (generate_fundus(config, i) for i in range(40)) if f.problem == "not_fundus"
    ][:3]
    assert len(not_fundus) == 3
    for index, fundus in enumerate(not_fundus):
        cv2.imwrite(
            str(images / f"other_{index}.png"), cv2.cvtColor(fundus.image, cv2.COLOR_RGB2BGR)
        )
    gradable = generate_fundus(SynthConfig.from_preset("standard", n=1, size=256, seed=5), 0)
    cv2.imwrite(str(images / "retina.png"), cv2.cvtColor(gradable.image, cv2.COLOR_RGB2BGR))
    run = tmp_path / "run"
    run.mkdir()
    build("small", input_size=64, width=4).save(str(run / "best.keras"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "predict", f"--model={run}", f"--images={images}", f"--out={out}"])
    assert exit_info.value.code in (0, None)
    with open(out / "predictions.csv") as f:
        rows = {os.path.basename(row["image"]): row for row in csv.DictReader(f)}
    assert set(rows) == {"other_0.png", "other_1.png", "other_2.png", "retina.png"}
    threshold = default_quality_gate().threshold
    for name in ("other_0.png", "other_1.png", "other_2.png"):
        assert float(rows[name]["quality"]) <= threshold
        assert (rows[name]["gradable"], rows[name]["decision"]) == ("0", "cannot grade")
    assert float(rows["retina.png"]["quality"]) > threshold
    assert rows["retina.png"]["decision"] in ("refer", "do not refer")
    for name, ringed in (("other_0", False), ("other_1", False), ("retina", True)):
        panel = cv2.cvtColor(cv2.imread(str(out / f"{name}_heatmap.png")), cv2.COLOR_BGR2RGB)
        cyan = np.all(panel == CANDIDATE_COLOUR, axis=-1)
        assert cyan.any() == ringed  # no lesion is pointed at on an ungradable photograph
    assert (out / "report.html").read_text().count("cannot grade") >= 3
