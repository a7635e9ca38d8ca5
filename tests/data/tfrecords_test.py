"""Tests of the TFRecord format: round trip of images, labels, ids, masks; atomic shards."""

import os

import numpy as np
import pytest
import tensorflow as tf

from drscreen.data import tfrecords
from drscreen.data.lesions import HARD_EXUDATE, MICROANEURYSM
from drscreen.data.records import FundusRecord


def _examples():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    fov = np.zeros((12, 12), bool)
    fov[2:10, 3:9] = True
    lesion = np.zeros((12, 12), bool)
    lesion[4, 5] = True
    graded = FundusRecord("7_left", "/x/7_left.jpeg", 3, "7", "left", dataset="kaggle")
    ungraded = FundusRecord("a", "/x/a.png", None, "a", dataset="diaretdb1")
    return (
        image,
        fov,
        lesion,
        [
            tfrecords.make_example(graded, image, fov, {HARD_EXUDATE: lesion}),
            tfrecords.make_example(ungraded, image[::-1], ~fov),
        ],
    )


def test_round_trip_keeps_everything(tmp_path):
    """Written then parsed examples give back image, masks, grade (-1 if none) and ids."""
    image, fov, lesion, examples = _examples()
    path = str(tmp_path / tfrecords.shard_filename("train", 0, 1))
    assert tfrecords.write_shard(path, examples) == 2
    parsed = list(
        tf.data.TFRecordDataset(path)
        .map(lambda s: tfrecords.decode_features(tfrecords.parse_features(s), lesion_masks=True))
        .as_numpy_iterator()
    )
    first, second = parsed
    np.testing.assert_array_equal(first["image"], image)
    np.testing.assert_array_equal(first["fov_mask"], fov.astype(np.uint8))
    np.testing.assert_array_equal(first["mask/" + HARD_EXUDATE], lesion.astype(np.uint8))
    assert first["has_mask/" + HARD_EXUDATE] and not first["has_mask/" + MICROANEURYSM]
    assert not first["mask/" + MICROANEURYSM].any()
    assert (first["grade"], first["image_id"], first["patient_id"]) == (3, b"7_left", b"7")
    assert (first["eye"], first["dataset"]) == (b"left", b"kaggle")
    np.testing.assert_array_equal(second["image"], image[::-1])
    assert second["grade"] == tfrecords.MISSING_GRADE and second["eye"] == b""


def test_interrupted_shard_leaves_no_file(tmp_path):
    """A writer that fails midway leaves neither the shard nor its temporary file."""
    _, _, _, examples = _examples()

    def failing():
        yield examples[0]
        raise RuntimeError("disk on fire")

    path = str(tmp_path / "train-00000-of-00001.tfrecord")
    with pytest.raises(RuntimeError):
        tfrecords.write_shard(path, failing())
    assert os.listdir(tmp_path) == []


def test_list_shards(tmp_path):
    """A folder plus split lists that split's shards in order; nothing found is an error."""
    for name in ("train-00001-of-00002", "train-00000-of-00002", "test-00000-of-00001"):
        tfrecords.write_shard(str(tmp_path / f"{name}.tfrecord"), [])
    names = [os.path.basename(p) for p in tfrecords.list_shards(str(tmp_path), "train")]
    assert names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    with pytest.raises(FileNotFoundError, match="validation"):
        tfrecords.list_shards(str(tmp_path), "validation")


def test_unknown_lesion_type_is_refused():
    """Lesion masks must use the shared vocabulary."""
    record = FundusRecord("a", "/x/a.png", 0, "a")
    with pytest.raises(ValueError, match="drusen"):
        tfrecords.make_example(
            record,
            np.zeros((4, 4, 3), np.uint8),
            np.ones((4, 4), bool),
            {"drusen": np.ones((4, 4), bool)},
        )
