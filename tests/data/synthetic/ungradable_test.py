"""Ungradable photographs: each capture failure does what it says, and only when asked for."""

import csv
import json

import cv2
import numpy as np
import pytest

from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, generate_fundus, write_dataset
from drscreen.data.synthetic.config import DIFFICULTIES
from drscreen.data.synthetic.ungradable import UNGRADABLE_KINDS, Capture, make_ungradable

SIZE = 128


@pytest.fixture(scope="module")
def fundus():
    """A gradable standard photograph with lesions (grade 2), as the generator made it."""
    config = SynthConfig.from_preset("standard", n=8, size=SIZE, seed=5, grade_mix=(0, 0, 1, 0, 0))
    return generate_fundus(config, 0)


def _failed(fundus, kind: str, seed: int = 0) -> Capture:
    labels = np.zeros(fundus.fov_mask.shape, np.uint16)
    labels[fundus.masks["hemorrhage"]] = 1
    capture = Capture(fundus.image, fundus.fov_mask, labels)
    centre, radius = (SIZE / 2, SIZE / 2), 0.48 * SIZE
    return make_ungradable(kind, capture, np.random.default_rng(seed), centre, radius)


def _green_detail(image: np.ndarray, fov: np.ndarray) -> float:
    """Mean |Laplacian of Gaussian (1 px)| of the green channel inside the eroded field of
    view: vessel-scale detail, above the sensor noise."""
    inner = cv2.erode(fov.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    green = cv2.GaussianBlur(image[..., 1].astype(np.float32), (0, 0), 1.0)
    laplacian = cv2.Laplacian(green, cv2.CV_32F)
    return float(np.abs(laplacian)[inner].mean())


def _brightness(image: np.ndarray, where: np.ndarray) -> float:
    return float(image.max(axis=-1)[where].mean())


@pytest.mark.parametrize("kind", ["defocus", "motion", "haze"])
def test_blur_and_haze_remove_fine_detail(fundus, kind):
    """Vessel and lesion edges lose at least 40 % of their detail (the sensor noise added
    after the optics keeps a floor of about 30 %)."""
    failed = _failed(fundus, kind)
    before = _green_detail(fundus.image, fundus.fov_mask)
    assert _green_detail(failed.image, failed.fov) < 0.6 * before


def test_exposure_failures_scale_the_light(fundus):
    """Under-exposure keeps under a fifth of the light; over-exposure saturates the field."""
    fov = fundus.fov_mask
    dark = _failed(fundus, "underexposed").image
    assert _brightness(dark, fov) < 0.2 * _brightness(fundus.image, fov)
    bright = _failed(fundus, "overexposed").image
    assert (bright.max(axis=-1)[fov] >= 250).mean() > 0.5


def test_small_pupil_lights_the_centre_only(fundus):
    """The outer ring of the field is under a tenth as bright as the centre."""
    failed = _failed(fundus, "small_pupil").image
    ys, xs = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(xs - SIZE / 2, ys - SIZE / 2) / (0.48 * SIZE)
    ring = fundus.fov_mask & (r > 0.7)
    assert _brightness(failed, ring) < 0.1 * _brightness(failed, r < 0.2)


def test_eyelid_darkens_one_side_of_the_field(fundus):
    """The top or bottom fifth of the field is under a quarter of the centre's brightness."""
    failed = _failed(fundus, "eyelid").image
    ys = np.mgrid[:SIZE, :SIZE][0]
    centre = _brightness(failed, fundus.fov_mask & (np.abs(ys - SIZE / 2) < SIZE / 10))
    top = _brightness(failed, fundus.fov_mask & (ys < SIZE / 5))
    bottom = _brightness(failed, fundus.fov_mask & (ys > 4 * SIZE / 5))
    assert min(top, bottom) < 0.25 * max(centre, top, bottom)


def test_off_centre_cuts_the_field_and_moves_the_lesions(fundus):
    """A quarter to a half of the radius leaves the frame; labels move with the image."""
    failed = _failed(fundus, "off_centre")
    dx, dy = failed.shift
    assert 0.25 * 0.48 * SIZE <= np.hypot(dx, dy) <= 0.55 * SIZE
    assert failed.fov.sum() < 0.9 * fundus.fov_mask.sum()
    expected = np.zeros_like(fundus.masks["hemorrhage"])
    rows, cols = np.nonzero(fundus.masks["hemorrhage"])
    keep = (rows + dy >= 0) & (rows + dy < SIZE) & (cols + dx >= 0) & (cols + dx < SIZE)
    expected[rows[keep] + dy, cols[keep] + dx] = True
    np.testing.assert_array_equal(failed.labels > 0, expected)
    assert not failed.image[~failed.fov].any()


def test_not_fundus_has_no_retina_and_no_lesions(fundus):
    """Four kinds of non-fundus image; none keeps a lesion label or a field of view."""
    seen = set()
    for seed in range(12):
        failed = _failed(fundus, "not_fundus", seed)
        assert not failed.labels.any() and not failed.fov.any()
        assert failed.image.shape == fundus.image.shape and failed.image.dtype == np.uint8
        seen.add(failed.image.tobytes()[:64])
    assert len(seen) > 4


def test_unknown_kind_is_named(fundus):
    with pytest.raises(ValueError, match="'smudge' is not one of"):
        _failed(fundus, "smudge")


def test_screening_preset_mixes_a_fifth_ungradable():
    """The screening preset is standard with ungradable_fraction 0.2; the grading presets 0."""
    assert DIFFICULTIES["screening"].ungradable_fraction == 0.2
    for name in ("easy", "standard", "hard"):
        assert DIFFICULTIES[name].ungradable_fraction == 0.0
    with pytest.raises(ValueError, match="ungradable_fraction must be in"):
        SynthConfig.from_preset("standard", ungradable_fraction=1.5)


def test_gradable_images_of_a_mix_are_those_of_the_plain_dataset():
    """Choosing ungradable images never changes the others: same pixels, grade, lesions."""
    plain = SynthConfig.from_preset("standard", n=24, size=64, seed=2)
    mixed = SynthConfig.from_preset("standard", n=24, size=64, seed=2, ungradable_fraction=0.4)
    problems = []
    for index in range(24):
        a, b = generate_fundus(plain, index), generate_fundus(mixed, index)
        assert a.gradable and a.grade == b.grade
        problems.append(b.problem)
        if b.gradable:
            np.testing.assert_array_equal(a.image, b.image)
            assert a.lesions == b.lesions and a.jpeg_quality == b.jpeg_quality
    assert 4 <= sum(map(bool, problems)) <= 16
    assert set(problems) - {""} <= set(UNGRADABLE_KINDS)


def test_writer_labels_gradability_only_when_asked(tmp_path):
    """image,level without the mix; image,level,gradable,problem with it, read back."""
    plain = write_dataset(
        SynthConfig(n=4, size=64, seed=1), tmp_path / "plain", workers=1, progress=False
    )
    with open(plain / "trainLabels.csv") as f:
        assert next(csv.reader(f)) == ["image", "level"]
    assert "ungradable_counts" not in json.loads((plain / "synth.json").read_text())
    assert "ungradable_fraction" not in (plain / "synth.json").read_text()
    config = SynthConfig.from_preset("screening", n=20, size=64, seed=1)
    mixed = write_dataset(config, tmp_path / "mixed", workers=1, progress=False)
    with open(mixed / "trainLabels.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "level", "gradable", "problem"]
    for index, row in enumerate(rows):
        fundus = generate_fundus(config, index)
        assert (row["gradable"], row["problem"]) == (str(int(fundus.gradable)), fundus.problem)
    summary = json.loads((mixed / "synth.json").read_text())
    ungradable = sum(row["gradable"] == "0" for row in rows)
    assert sum(summary["ungradable_counts"].values()) == ungradable > 0
    records = read_dataset("synthetic", mixed)
    assert [r.gradable for r in records] == [row["gradable"] == "1" for row in rows]
    assert all(r.gradable is None for r in read_dataset("synthetic", plain))
