"""Tests of `drscreen predict`: CSV, overlays and bad images, through the command line."""

import csv
import errno
import os

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import cli
from drscreen.commands import predict as predict_module
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


def _rows(out) -> dict[str, dict]:
    with open(out / "predictions.csv", encoding="utf-8") as f:
        return {os.path.basename(row["image"]): row for row in csv.DictReader(f)}


def _predict(model, images, out, *flags: str) -> None:
    argv = ["drscreen", "predict", f"--model={model}", f"--images={images}", f"--out={out}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, *flags])
    assert exit_info.value.code in (0, None), exit_info.value.code


def test_predict_command_writes_a_row_and_an_overlay_per_photograph(run_dir, capsys):
    """2 good images -> rows and overlays checked against the model computed here; the corrupt
    JPEG gets a row too: cannot grade, with its reason and no figures."""
    out = run_dir / "out"
    _predict(run_dir / "run", run_dir / "images", out, "--batch_size=2")
    rows = _rows(out)
    assert list(rows) == ["a.png", "b.png", "c.jpg"]
    model = keras.saving.load_model(run_dir / "run" / "best.keras")
    threshold = default_quality_gate().threshold
    for name in ("a.png", "b.png"):
        row = rows[name]
        grades, heatmap, fov = _model_output(model, row["image"])
        probabilities = referable_probability(grades)
        assert float(row["raw_grade"]) == pytest.approx(grades[0], abs=1e-5)
        image, _ = crop_to_field_of_view(load_rgb(row["image"]), 64)
        features = gradability_features(image[np.newaxis], fov[np.newaxis]).numpy()
        quality = float(default_quality_gate().quality(features)[0])
        assert float(row["quality"]) == pytest.approx(quality, abs=1e-5)
        assert row["gradable"] == str(int(quality > threshold))
        if row["gradable"] == "1":
            assert float(row["grade"]) == pytest.approx(grades[0], abs=1e-5)
            assert float(row["referable_probability"]) == pytest.approx(probabilities[0], abs=1e-5)
            assert float(row["uncertainty"]) == pytest.approx(np.std(probabilities), abs=1e-5)
            # no metrics.json in this run: an eye is referred at probability >= 0.5
            expected = "refer" if probabilities[0] >= 0.5 else "do not refer"
            assert (row["decision"], row["reason"]) == (expected, "")
        else:  # a refused photograph shows no result, only why
            assert (row["grade"], row["referable_probability"], row["uncertainty"]) == ("",) * 3
            assert row["decision"] == "cannot grade"
            assert row["reason"] == (
                f"quality {quality:.3f} ≤ the gate's threshold {threshold:.3f}: retake the "
                "photograph"
            )
        stem = os.path.splitext(name)[0]
        overlay = cv2.cvtColor(cv2.imread(str(out / f"{stem}_heatmap.png")), cv2.COLOR_BGR2RGB)
        original = load_rgb(row["image"])
        box = tuple(field_of_view_box(field_of_view_mask(original)).numpy())
        marks = candidates_to_mark(heatmap, fov > 0.5) if row["gradable"] == "1" else None
        expected_panel = photograph_panel(original, heatmap, box, fov, candidates=marks)
        difference = np.abs(overlay.astype(int) - expected_panel.astype(int))
        # The 48 px photograph enlarged pixel by pixel to a readable 512 px (x 32/3):
        # photograph | heatmap on it | colour scale.
        assert heatmap.max() > 0 and overlay.shape == expected_panel.shape
        assert difference.max() <= 2
        assert overlay.shape[0] == 512 and overlay.shape[1] > 2 * 512
        enlarged = cv2.resize(original, (512, 512), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(overlay[:, :512], enlarged)
        assert (row["patient"], row["eye"]) == (stem, "")
    bad = rows["c.jpg"]
    assert (bad["decision"], bad["gradable"]) == ("cannot grade", "0")
    assert "truncated" in bad["reason"]
    for column in ("grade", "referable_probability", "uncertainty", "quality", "raw_grade"):
        assert bad[column] == ""
    assert not (out / "c_heatmap.png").exists() and not (out / "failures.csv").exists()
    report = (out / "report.html").read_text()
    assert report.count("<tr data-order=") == 3 and "no validation operating point" in report
    assert "3 patients, 3 photographs" in report and "c.jpg: cannot grade" in report
    # a model file without its run: the page says its training data is unknown
    assert "training data unknown (a model file without its run) — not for clinical use" in report
    captured = capsys.readouterr()
    assert "drscreen predict: 3/3 images" in captured.err
    assert "cannot grade" in captured.err and "c.jpg" in captured.err


def test_four_photographs_one_grayscale_give_four_rows(run_dir, tmp_path):
    """The must-show case: a grayscale photograph among four is a row of its own, cannot
    grade, "grayscale" its reason, and is on the page."""
    images = tmp_path / "four"
    images.mkdir()
    for name in ("a.png", "b.png"):
        (images / name).write_bytes((run_dir / "images" / name).read_bytes())
    _fundus_png(str(images / "d.png"), 3)
    cv2.imwrite(str(images / "e.png"), np.full((48, 48), 120, np.uint8))
    _predict(run_dir / "run", images, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert list(rows) == ["a.png", "b.png", "d.png", "e.png"]
    assert rows["e.png"]["decision"] == "cannot grade"
    assert "grayscale" in rows["e.png"]["reason"]
    report = (tmp_path / "out" / "report.html").read_text()
    assert "4 patients, 4 photographs" in report and "e.png: cannot grade" in report


def test_a_reused_output_folder_holds_only_the_new_run(run_dir, tmp_path):
    """Predicting one unreadable photograph into a folder holding an earlier run's results
    leaves only this run's: its row and report, no earlier overlay; a folder holding other
    files is refused by name, untouched."""
    out = tmp_path / "out"
    _predict(run_dir / "run", run_dir / "images", out)
    assert (out / "a_heatmap.png").is_file()
    _predict(run_dir / "run", run_dir / "images" / "c.jpg", out)
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "report.html"]
    assert list(_rows(out)) == ["c.jpg"]
    assert "1 patients, 1 photographs (1 cannot be graded)" in (out / "report.html").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    argv = ["drscreen", "predict", f"--model={run_dir / 'run'}", f"--images={run_dir / 'images'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={mine}"])
    assert "mine holds files this command did not write (notes.txt)" in str(exit_info.value.code)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_entries_that_are_not_image_files_are_named(run_dir, tmp_path, capsys):
    """A symbolic-link loop, a broken link, a FIFO and a directory named like photographs each
    get a row with the reason (a FIFO is never opened), and count in the progress line."""
    images = tmp_path / "odd"
    images.mkdir()
    (images / "a.png").write_bytes((run_dir / "images" / "a.png").read_bytes())
    os.symlink(images / "loop.jpg", images / "loop.jpg")
    os.symlink(images / "absent.png", images / "broken.png")
    os.mkfifo(images / "pipe.jpg")
    (images / "x.jpeg").mkdir()
    (images / "notes.txt").write_text("not a photograph name: ignored")
    _predict(run_dir / "run", images, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert list(rows) == ["a.png", "broken.png", "loop.jpg", "pipe.jpg", "x.jpeg"]
    reasons = {name: rows[name]["reason"] for name in rows if name != "a.png"}
    assert reasons["broken.png"].startswith("a symbolic link that leads nowhere")
    assert reasons["loop.jpg"] == "a symbolic link that leads nowhere (Too many levels of " \
        "symbolic links)"  # fmt: skip
    assert reasons["pipe.jpg"] == "a named pipe (FIFO), not an image file"
    assert reasons["x.jpeg"] == "a directory, not an image file"
    assert all(rows[name]["decision"] == "cannot grade" for name in reasons)
    err = capsys.readouterr().err
    assert "drscreen predict: 5/5 images" in err and "x.jpeg: a directory" in err


def test_a_full_disk_keeps_the_previous_output(run_dir, tmp_path, monkeypatch):
    """The disk fills up while overlays are written: an error saying the space needed, and the
    earlier output folder as it was."""
    out = tmp_path / "out"
    _predict(run_dir / "run", run_dir / "images", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(path, image):
        with open(path, "wb") as file:
            file.write(b"x" * 300_000)
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(predict_module, "save_image", full_disk)
    argv = ["drscreen", "predict", f"--model={run_dir / 'run'}", f"--images={run_dir / 'images'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={out}", "--batch_size=1"])
    message = str(exit_info.value.code)
    assert message.startswith(f"drscreen predict: no space left on device writing {out}: 0.3 MB")
    assert "previous output is unchanged" in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


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
            ("c", ""),
        ]
    assert (out / "report.html").read_text().count("<tr data-order=") == 2  # P7, and c.jpg
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
    assert list_images(str(run_dir / "images" / "a.png")) == [
        (str(run_dir / "images" / "a.png"), None)
    ]


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
        row = rows[name]
        assert float(row["quality"]) <= threshold
        assert (row["gradable"], row["decision"]) == ("0", "cannot grade")
        # no probability is presented for a refused photograph; the network's grade is kept
        # in raw_grade only
        assert (row["grade"], row["referable_probability"], row["uncertainty"]) == ("",) * 3
        assert row["raw_grade"] and "retake the photograph" in row["reason"]
    assert float(rows["retina.png"]["quality"]) > threshold
    assert rows["retina.png"]["decision"] in ("refer", "do not refer")
    for name, ringed in (("other_0", False), ("other_1", False), ("retina", True)):
        panel = cv2.cvtColor(cv2.imread(str(out / f"{name}_heatmap.png")), cv2.COLOR_BGR2RGB)
        cyan = np.all(panel == CANDIDATE_COLOUR, axis=-1)
        assert cyan.any() == ringed  # no lesion is pointed at on an ungradable photograph
    report = (out / "report.html").read_text()
    for name in ("other_0.png", "other_1.png", "other_2.png"):
        eye = report.split(f"{name}: ")[1].split("</div>")[0]
        assert eye.startswith("cannot grade — quality ") and "probability" not in eye
