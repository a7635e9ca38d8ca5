"""Tests of the tf.data pipelines: shapes, labels, order, determinism, resampling, sharding."""

import dataclasses

import cv2
import numpy as np
import pytest
import tensorflow as tf

from drscreen.data import fundus, pipeline, tfrecords
from drscreen.data.augment import AugmentConfig
from drscreen.data.pipeline import PipelineConfig, class_weights_at_epoch
from drscreen.data.records import FundusRecord
from tests.data.fundus_test import draw_fundus

SIZE = 16
GRADES = (0, 0, 0, 0, 0, 0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[FundusRecord]:
    """Ten small fundus PNGs; image i has brightness growing with i."""
    folder = tmp_path_factory.mktemp("images")
    result = []
    for i, grade in enumerate(GRADES):
        colour = (100 + 15 * i, 60, 20)
        image = draw_fundus(36, 44, (22, 18), 17, colour)
        path = str(folder / f"{i}.png")
        cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        result.append(FundusRecord(f"img{i}", path, grade, f"p{i // 2}", ("left", "right")[i % 2]))
    return result


def _config(**overrides) -> PipelineConfig:
    values = dict(image_size=SIZE, batch_size=4, shuffle_buffer=8, cache=True, seed=0)
    values.update(overrides)
    return PipelineConfig(**values)


def _centre_red(images: np.ndarray) -> np.ndarray:
    return images[:, SIZE // 2, SIZE // 2, 0]


def test_class_weights_by_hand():
    """w_1 = w0; w_2 = 0.975·w0 + 0.025·wf; w_t -> wf."""
    np.testing.assert_allclose(class_weights_at_epoch(1), [1.36, 14.38, 6.64, 40.24, 49.61])
    expected = [
        0.975 * 1.36 + 0.025,
        0.975 * 14.38 + 0.05,
        0.975 * 6.64 + 0.05,
        0.975 * 40.24 + 0.05,
        0.975 * 49.61 + 0.05,
    ]
    np.testing.assert_allclose(class_weights_at_epoch(2), expected)
    np.testing.assert_allclose(class_weights_at_epoch(3, (10.0,), (2.0,), 0.5), [4.0])
    np.testing.assert_allclose(class_weights_at_epoch(2000), [1, 2, 2, 2, 2], atol=1e-9)
    with pytest.raises(ValueError, match="1-based"):
        class_weights_at_epoch(0)


def test_evaluation_batches_keep_order_and_labels(records):
    """One ordered pass: shapes, dtypes, grades in record order, partial last batch."""
    batches = list(pipeline.dataset_from_records(records, _config(), training=False))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0].numpy() for b in batches])
    grades = np.concatenate([b[1].numpy() for b in batches])
    assert images.shape == (10, SIZE, SIZE, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(grades, np.array(GRADES, np.float32))
    assert np.all(np.diff(_centre_red(images)) > 0)  # record order kept
    assert images.min() >= 0.0 and images.max() <= 255.0


def _first_batches(dataset: tf.data.Dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


@pytest.mark.parametrize("resample", [False, True])
def test_training_is_deterministic_when_seeded(records, resample):
    """Two pipelines built with the same seed give the same augmented batches."""
    config = _config(augment=AugmentConfig(), resample=resample, steps_per_epoch=2)
    first = _first_batches(pipeline.dataset_from_records(records, config, True), 2)
    second = _first_batches(pipeline.dataset_from_records(records, config, True), 2)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert all(x.shape == (4, SIZE, SIZE, 3) and y.shape == (4,) for x, y in first)


def test_training_batches_pair_images_with_their_grades(records):
    """Shuffled batches keep each image with its grade (brightness identifies the image)."""
    config = _config(augment=None)
    brightness_to_grade = {}
    evaluation = pipeline.dataset_from_records(records, config, training=False)
    for x, y in evaluation:
        brightness_to_grade.update(zip(_centre_red(x.numpy()), y.numpy(), strict=True))
    seen = []
    for x, y in pipeline.dataset_from_records(records, config, training=True):
        for red, grade in zip(_centre_red(x.numpy()), y.numpy(), strict=True):
            assert brightness_to_grade[red] == grade
            seen.append(red)
    assert len(seen) == 8  # drop_remainder
    assert seen != sorted(seen)  # shuffled


def test_resampling_follows_schedule(records):
    """With r = 0, epoch 1 samples grades ∝ w0·n and later epochs ∝ wf·n."""
    config = _config(
        augment=None, resample=True, steps_per_epoch=15, resample_decay=0.0, batch_size=20
    )
    dataset = pipeline.dataset_from_records(records, config, True)
    grades = np.concatenate([y.numpy() for _, y in dataset.take(30)]).astype(int)
    counts = np.bincount(GRADES, minlength=5)
    for epoch_grades, weights in (
        (grades[:300], (1.36, 14.38, 6.64, 40.24, 49.61)),
        (grades[300:], (1, 2, 2, 2, 2)),
    ):
        expected = np.array(weights) * counts / np.sum(np.array(weights) * counts)
        observed = np.bincount(epoch_grades, minlength=5) / len(epoch_grades)
        np.testing.assert_allclose(observed, expected, atol=0.06)


def test_grade_probabilities_give_absent_grades_zero():
    """Grade 2 absent: its probability is 0, the others ∝ w·n and sum to 1 in every epoch."""
    config = _config(resample=True, steps_per_epoch=1)
    table = pipeline._grade_probabilities(config, {0: 6, 1: 1, 3: 1, 4: 1})
    assert table.shape == (2000, 5)
    mass = np.array([1.36 * 6, 14.38, 0.0, 40.24, 49.61])
    np.testing.assert_allclose(table[0], mass / mass.sum(), rtol=1e-6)
    np.testing.assert_allclose(table[-1], np.array([6, 2, 0, 2, 2]) / 12, rtol=1e-6)
    np.testing.assert_array_equal(table[:, 2], 0.0)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=1e-6)


def test_resampling_with_an_absent_grade(records):
    """Training records without grade 2 resample the other grades ∝ w0·n, never grade 2."""
    without_two = [r for r in records if r.grade != 2]
    config = _config(
        augment=None, resample=True, steps_per_epoch=100, resample_decay=0.0, batch_size=20
    )
    dataset = pipeline.dataset_from_records(without_two, config, True)
    grades = np.concatenate([y.numpy() for _, y in dataset.take(15)]).astype(int)
    mass = np.array([1.36 * 6, 14.38, 0.0, 40.24, 49.61])
    observed = np.bincount(grades, minlength=5) / len(grades)
    assert observed[2] == 0.0
    np.testing.assert_allclose(observed, mass / mass.sum(), atol=0.06)


def test_resampling_weights_zero_on_every_present_grade_is_refused(records):
    """Weights that give every grade in the data weight 0 are named, not a NaN in tf.data."""
    config = _config(
        resample=True, steps_per_epoch=1, resample_initial=(0, 0, 1, 0, 0), resample_decay=1.0
    )
    only_zero = [r for r in records if r.grade == 0]
    with pytest.raises(ValueError, match=r"every grade present in training \[0\] weight 0"):
        pipeline.dataset_from_records(only_zero, config, True)


def test_sharding_splits_records(records):
    """Shard 1 of 2 reads every other record."""
    config = _config(num_shards=2, shard_index=1)
    grades = np.concatenate(
        [y.numpy() for _, y in pipeline.dataset_from_records(records, config, False)]
    )
    np.testing.assert_array_equal(grades, np.array(GRADES[1::2], np.float32))


def test_evaluation_dicts_keep_ids_and_masks(records):
    """dataset_for_evaluation yields image, mask, grade and identifiers in order."""
    batches = list(pipeline.dataset_for_evaluation(records, _config()))
    ids = np.concatenate([b["image_id"].numpy() for b in batches])
    assert [i.decode() for i in ids] == [r.image_id for r in records]
    assert batches[0]["mask"].shape == (4, SIZE, SIZE)
    assert batches[0]["mask"].numpy()[:, SIZE // 2, SIZE // 2].all()
    assert batches[0]["mask"].numpy()[:, 0, 0].sum() == 0
    assert batches[0]["eye"].numpy()[1] == b"right"


def test_tfrecords_pipeline_matches_stored_images(tmp_path, records):
    """Batches read from shards give the stored images and grades; other sizes are resized."""
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    fov = np.ones((SIZE, SIZE), bool)
    examples = [
        tfrecords.make_example(record, image, fov)
        for record, image in zip(records[:5] + [records[5]], stored, strict=True)
    ]
    tfrecords.write_shard(str(tmp_path / "validation-00000-of-00002.tfrecord"), examples[:3])
    tfrecords.write_shard(str(tmp_path / "validation-00001-of-00002.tfrecord"), examples[3:])
    images, grades = [], []
    for x, y in pipeline.dataset_from_tfrecords(str(tmp_path), _config(), training=False):
        images.append(x.numpy())
        grades.append(y.numpy())
    np.testing.assert_array_equal(np.concatenate(images), stored.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate(grades), np.array(GRADES[:6], np.float32))
    small = pipeline.dataset_from_tfrecords(
        str(tmp_path / "validation-*.tfrecord"), _config(image_size=8), training=False
    )
    assert next(iter(small))[0].shape == (4, 8, 8, 3)
    train = pipeline.dataset_from_tfrecords(
        str(tmp_path),
        _config(augment=AugmentConfig(), resample=True, steps_per_epoch=1),
        training=True,
        split="validation",
    )
    x, y = next(iter(train))
    assert x.shape == (4, SIZE, SIZE, 3) and set(y.numpy()) <= {0.0}


def test_config_validation():
    """Resampling without steps per epoch and bad shard indices are refused."""
    with pytest.raises(ValueError, match="steps_per_epoch"):
        PipelineConfig(resample=True)
    with pytest.raises(ValueError, match="shard_index"):
        PipelineConfig(num_shards=2, shard_index=2)


def test_training_needs_grades(records):
    """A training record without grade is named."""
    unlabelled = [FundusRecord("u", "/x/u.png", None, "u")]
    with pytest.raises(ValueError, match="/x/u.png"):
        pipeline.dataset_from_records(records + unlabelled, _config(), True)


@pytest.fixture(scope="module")
def with_refused(tmp_path_factory, records) -> list[FundusRecord]:
    """The ten records, with an empty file after the second and a grayscale photograph (a
    rule of `image_io.load_rgb`) and a dark one (no field of view) after the sixth."""
    folder = tmp_path_factory.mktemp("refused")
    (folder / "empty.png").write_bytes(b"")
    gray = cv2.cvtColor(draw_fundus(36, 44, (22, 18), 17, (160, 60, 20)), cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(folder / "gray.png"), gray)
    cv2.imwrite(str(folder / "dark.png"), np.tile(np.uint8([4, 6, 20]), (36, 44, 1)))
    refused = [
        FundusRecord(name, str(folder / f"{name}.png"), 0, name) for name in ("empty", "gray")
    ]
    dark = FundusRecord("dark", str(folder / "dark.png"), 0, "dark")
    return [*records[:2], refused[0], *records[2:6], refused[1], dark, *records[6:]]


def test_training_leaves_refused_photographs_out_naming_each_once(with_refused, capsys):
    """Refused photographs are in no training or validation batch; each is named once with
    its reason, however many epochs read it."""
    config = _config(augment=None, shuffle_buffer=0, cache=False)
    grades = [y.numpy() for _, y in pipeline.dataset_from_records(with_refused, config, False)]
    np.testing.assert_array_equal(np.concatenate(grades), np.array(GRADES, np.float32))
    training = pipeline.dataset_from_records(with_refused, config, True).repeat(3)
    assert sum(x.shape[0] for x, _ in training) == 3 * 8  # 10 usable, drop_remainder
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    expected = {
        "empty.png": "empty file",
        "gray.png": "grayscale",
        "dark.png": fundus.NO_FIELD_OF_VIEW_REASON,
    }
    for name, reason in expected.items():
        # once in the evaluation pass, once for all three training epochs
        assert sum(name in line and reason in line for line in lines) == 2, lines


def test_evaluation_keeps_refused_photographs_with_their_reason(with_refused):
    """dataset_for_evaluation yields every record in order, the refused ones black with
    their reason in ``problem``, the others with "" and their path."""
    batches = list(pipeline.dataset_for_evaluation(with_refused, _config()))
    problems = np.concatenate([b["problem"].numpy() for b in batches]).astype(str)
    images = np.concatenate([b["image"].numpy() for b in batches])
    paths = np.concatenate([b["path"].numpy() for b in batches]).astype(str)
    refused = [i for i, r in enumerate(with_refused) if r.image_id in ("empty", "gray", "dark")]
    assert [i for i, p in enumerate(problems) if p] == refused
    assert "empty file" in problems[2] and "grayscale" in problems[7]
    assert problems[8] == fundus.NO_FIELD_OF_VIEW_REASON
    assert not images[[2, 7]].any()
    assert list(paths) == [r.image_path for r in with_refused]


def test_evaluation_refuses_a_photograph_whose_lesion_mask_is_unusable(tmp_path, records):
    """A corrupt lesion mask, or one of another size, refuses its photograph, naming the
    mask; the photograph's other masks and the other photographs are unaffected."""
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((36, 44), np.uint8))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:40])
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((20, 20), np.uint8))
    masked = [
        dataclasses.replace(records[0], lesion_masks={"hemorrhage": str(good)}),
        dataclasses.replace(
            records[1], lesion_masks={"hemorrhage": str(good), "microaneurysm": str(corrupt)}
        ),
        dataclasses.replace(records[2], lesion_masks={"hard_exudate": str(small)}),
    ]
    (batch,) = pipeline.dataset_for_evaluation(masked, _config(), lesion_masks=True)
    problems = batch["problem"].numpy().astype(str)
    assert problems[0] == ""
    assert problems[1].startswith(f"microaneurysm mask {corrupt}: truncated or corrupt PNG")
    assert problems[2] == f"hard_exudate mask {small} is 20x20, the photograph 36x44"
