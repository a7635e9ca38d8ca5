"""Tests for one synthetic photograph: determinism, grade/lesion consistency, ground truth."""

import cv2
import numpy as np
import pytest

from drscreen.data import lesions as lesion_types
from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.generator import generate_fundus

_MIX_ALL = (0.2, 0.2, 0.2, 0.2, 0.2)


@pytest.fixture(scope="module")
def fundi():
    config = SynthConfig(n=30, size=96, seed=11, grade_mix=_MIX_ALL)
    return [generate_fundus(config, index) for index in range(config.n)]


def test_same_seed_and_index_give_identical_images():
    """Generation depends only on (config, index)."""
    config = SynthConfig(n=4, size=64, seed=2)
    a, b = generate_fundus(config, 3), generate_fundus(config, 3)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.lesions == b.lesions
    assert not np.array_equal(a.image, generate_fundus(config, 2).image)


def test_identity_follows_the_index():
    """Even indices are left eyes, odd ones right eyes, two per patient from 1."""
    config = SynthConfig(n=5, size=64)
    names = [generate_fundus(config, i).name for i in range(5)]
    assert names == ["1_left", "1_right", "2_left", "2_right", "3_left"]


def test_index_outside_the_dataset_is_rejected():
    with pytest.raises(ValueError, match="outside the dataset"):
        generate_fundus(SynthConfig(n=2, size=64), 2)


def test_output_types_and_shapes(fundi):
    """RGB uint8 image, one bool mask per lesion type, all the photograph's size."""
    for fundus in fundi:
        assert fundus.image.shape == (96, 96, 3) and fundus.image.dtype == np.uint8
        assert set(fundus.masks) == set(lesion_types.LESION_TYPES)
        for mask in (*fundus.masks.values(), fundus.fov_mask):
            assert mask.shape == (96, 96) and mask.dtype == bool


def test_masks_match_the_grade(fundi):
    """0: no lesions; 1: microaneurysms only; >=2: more than microaneurysms;
    4: neovascularisation or a pre-retinal hemorrhage."""
    grades = set()
    for fundus in fundi:
        grades.add(fundus.grade)
        present = {kind for kind, mask in fundus.masks.items() if mask.any()}
        if fundus.grade == 0:
            assert present == set()
        elif fundus.grade == 1:
            assert present == {lesion_types.MICROANEURYSM}
        else:
            assert present - {lesion_types.MICROANEURYSM}
        forms = {row.form for row in fundus.lesions}
        if fundus.grade == 4:
            assert lesion_types.NEOVASCULARISATION in present or "preretinal" in forms
        else:
            assert lesion_types.NEOVASCULARISATION not in present
            assert "preretinal" not in forms
    assert grades == {0, 1, 2, 3, 4}


def test_lesion_table_agrees_with_the_masks(fundi):
    """Types with rows have non-empty masks and vice versa; areas sum to mask pixel counts;
    each centre lies within its radius of a mask pixel of its type."""
    for fundus in fundi:
        for kind, mask in fundus.masks.items():
            rows = [row for row in fundus.lesions if row.lesion_type == kind]
            assert bool(rows) == bool(mask.any())
            assert sum(row.area for row in rows) == int(mask.sum())
            ys, xs = np.nonzero(mask)
            for row in rows:
                assert row.area > 0
                nearest = np.min(np.hypot(xs - row.center_x, ys - row.center_y))
                assert nearest <= row.radius + 1.5


def test_field_of_view_is_a_circle_on_black(fundi):
    """Black outside the field of view; the field of view is a centred disc (notch aside)."""
    for fundus in fundi:
        assert not fundus.image[~fundus.fov_mask].any()
        ys, xs = np.nonzero(fundus.fov_mask)
        r = np.hypot(xs - 48, ys - 48)
        radius = np.sqrt(fundus.fov_mask.sum() / np.pi)
        assert 0.9 * 48 < radius <= 48
        assert r.max() <= radius + 2
        yy, xx = np.mgrid[:96, :96]
        inner = np.hypot(xx - 48, yy - 48) < 0.9 * radius
        assert fundus.fov_mask[inner].all()
        assert fundus.image[inner].max(axis=-1).min() > 0
        for kind, mask in fundus.masks.items():
            assert not (mask & ~fundus.fov_mask).any(), kind


def test_optic_disc_is_on_the_nasal_side():
    """The brightest blob (optic disc) is right of centre in right eyes, left in left eyes."""
    config = SynthConfig.from_preset(
        "easy", n=12, size=128, seed=5, grade_mix=(1, 0, 0, 0, 0), distractor_rate=0.0
    )
    for index in range(config.n):
        fundus = generate_fundus(config, index)
        luminance = cv2.GaussianBlur(fundus.image.astype(np.float32).mean(-1), (0, 0), 4)
        _, x = np.unravel_index(np.argmax(luminance), luminance.shape)
        assert (x > 64) == (fundus.eye == "right"), (fundus.name, x)


def test_masks_sit_on_the_painted_lesions_after_rotation():
    """With strong rotation but no blur or noise, red-lesion mask pixels are darker in green
    than the ring just around them, and bright-lesion pixels brighter."""
    config = SynthConfig.from_preset(
        "easy",
        n=16,
        size=256,
        seed=8,
        grade_mix=(0, 0, 0, 1, 0),
        rotation_max_deg=30.0,
        blur_max=0.0,
        noise_max=0.0,
        lesion_size=2.0,
        distractor_rate=0.0,
    )
    kernel = np.ones((7, 7), np.uint8)
    checked = 0
    for index in range(4):
        fundus = generate_fundus(config, index)
        green = fundus.image[..., 1].astype(float)
        for kind in (lesion_types.HEMORRHAGE, lesion_types.HARD_EXUDATE):
            mask = fundus.masks[kind]
            if mask.sum() < 20:
                continue
            ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
            inside, around = green[mask].mean(), green[ring & fundus.fov_mask].mean()
            if kind == lesion_types.HEMORRHAGE:
                assert inside < around - 5
            else:
                assert inside > around + 5
            checked += 1
    assert checked >= 4


def test_drusen_past_the_frame_edge_regression():
    """Image 473 of this config places a druse left of the frame (it once failed to
    broadcast an empty window against a 252-pixel slice)."""
    config = SynthConfig.from_preset("standard", n=600, size=256, seed=0)
    fundus = generate_fundus(config, 473)
    assert fundus.image.shape == (256, 256, 3)


def _assert_generated(fundus, size: int) -> bool:
    """An RGB photograph of ``size`` px, black outside its field of view, its masks inside it,
    matching its grade (0: none; 1: microaneurysms only; more: other lesions) and its lesion
    table (the rows of a type add up to its mask's area). Returns False for a grade >= 2
    photograph that shows microaneurysms only: at 64 px the microaneurysms, painted last, can
    cover its one other lesion (a known limit of the generator, counted by the sweep)."""
    assert fundus.image.shape == (size, size, 3) and fundus.image.dtype == np.uint8
    assert not fundus.image[~fundus.fov_mask].any()
    present = {kind for kind, mask in fundus.masks.items() if mask.any()}
    expected = {0: set(), 1: {lesion_types.MICROANEURYSM}}.get(fundus.grade)
    covered = False
    if expected is None:
        covered = present == {lesion_types.MICROANEURYSM}
        assert present - {lesion_types.MICROANEURYSM} or covered, (fundus.name, fundus.grade)
    else:
        assert present == expected, (fundus.name, fundus.grade)
    for kind, mask in fundus.masks.items():
        assert not (mask & ~fundus.fov_mask).any(), (fundus.name, kind)
        area = sum(row.area for row in fundus.lesions if row.lesion_type == kind)
        assert area == int(mask.sum()), (fundus.name, kind)
    return not covered


@pytest.mark.parametrize(
    "difficulty, size, n, seed", [("standard", 64, 80, 3), ("hard", 256, 40, 4)]
)
def test_many_images_generate(difficulty, size, n, seed):
    """Every image of a sweep of indices generates consistent with its grade and masks."""
    config = SynthConfig.from_preset(difficulty, n=n, size=size, seed=seed)
    for index in range(n):
        assert _assert_generated(generate_fundus(config, index), size)


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_large_sweep_generates(difficulty):
    """Thousands of images, at 64 and 256 px, all generate consistent with their grade and
    masks; at 64 px at most 1 in 500 grade >= 2 photographs shows only microaneurysms (their
    one other lesion covered: 509_left of "standard"), at 256 px none."""
    for size, n, most in ((64, 2000, 4), (256, 600, 0)):
        config = SynthConfig.from_preset(difficulty, n=n, size=size, seed=0)
        shown = [_assert_generated(generate_fundus(config, index), size) for index in range(n)]
        covered = [index for index, ok in enumerate(shown) if not ok]
        assert len(covered) <= most, (size, covered)
