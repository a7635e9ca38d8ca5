"""The TFRecord format written by `drscreen prepare`: one tf.train.Example per photograph.

Owns the feature spec (in `FEATURE_SPEC`, nowhere else), encoding an example, parsing it back
and writing shards atomically. Features:

- ``image``: PNG of the pre-processed uint8 RGB image (size x size),
- ``fov_mask``: PNG of the field-of-view mask (0/255),
- ``grade``: int64 ICDR grade, `MISSING_GRADE` (-1) when the dataset has none,
- ``image_id``, ``patient_id``, ``eye``, ``dataset``: strings,
- ``mask/<lesion_type>``: PNG of the lesion mask (0/255), empty when absent, for each type in
  `drscreen.data.lesions.LESION_TYPES`.
"""

import os
from collections.abc import Iterable, Mapping

import cv2
import numpy as np
import tensorflow as tf

from drscreen.data.lesions import LESION_TYPES
from drscreen.data.records import FundusRecord

MISSING_GRADE = -1
MASK_PREFIX = "mask/"
HAS_MASK_PREFIX = "has_mask/"
SHARD_SUFFIX = ".tfrecord"

FEATURE_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "fov_mask": tf.io.FixedLenFeature([], tf.string),
    "grade": tf.io.FixedLenFeature([], tf.int64, default_value=MISSING_GRADE),
    "image_id": tf.io.FixedLenFeature([], tf.string),
    "patient_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "eye": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "dataset": tf.io.FixedLenFeature([], tf.string, default_value=""),
    **{
        MASK_PREFIX + lesion: tf.io.FixedLenFeature([], tf.string, default_value="")
        for lesion in LESION_TYPES
    },
}


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB image (H, W, 3) or a mask (H, W), bool masks as 0/255."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"cannot PNG-encode an array of shape {array.shape}")
    return encoded.tobytes()


def _bytes_feature(value: bytes | str) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def make_example(
    record: FundusRecord,
    image: np.ndarray,
    fov_mask: np.ndarray,
    lesion_masks: Mapping[str, np.ndarray] | None = None,
) -> bytes:
    """Serializes one pre-processed photograph.

    Parameters
    ----------
    record:
        Its labels and identifiers.
    image:
        uint8 RGB (S, S, 3), already pre-processed.
    fov_mask:
        bool (S, S) field-of-view mask.
    lesion_masks:
        Lesion type to bool (S, S) mask, for the types the record has.

    Returns
    -------
    bytes
        A serialized tf.train.Example.
    """
    lesion_masks = lesion_masks or {}
    unknown = set(lesion_masks) - set(LESION_TYPES)
    if unknown:
        raise ValueError(f"{record.image_path}: unknown lesion types {sorted(unknown)}")
    grade = MISSING_GRADE if record.grade is None else record.grade
    feature = {
        "image": _bytes_feature(encode_png(image)),
        "fov_mask": _bytes_feature(encode_png(fov_mask)),
        "grade": tf.train.Feature(int64_list=tf.train.Int64List(value=[grade])),
        "image_id": _bytes_feature(record.image_id),
        "patient_id": _bytes_feature(record.patient_id),
        "eye": _bytes_feature(record.eye),
        "dataset": _bytes_feature(record.dataset),
        **{MASK_PREFIX + k: _bytes_feature(encode_png(v)) for k, v in lesion_masks.items()},
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def parse_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized example into its raw features (PNG strings not decoded)."""
    return tf.io.parse_single_example(serialized, FEATURE_SPEC)


def _decode_mask(png: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.io.decode_png(png, channels=1)[..., 0] > 127, tf.uint8)


def decode_features(
    features: Mapping[str, tf.Tensor], lesion_masks: bool = False
) -> dict[str, tf.Tensor]:
    """Decodes the PNG features of `parse_features`' output.

    Returns
    -------
    dict[str, tf.Tensor]
        ``image`` uint8 (S, S, 3), ``fov_mask`` uint8 (S, S) of 0/1, the scalar ``grade``,
        ``image_id``, ``patient_id``, ``eye``, ``dataset``; with `lesion_masks`, also
        ``mask/<type>`` uint8 (S, S) of 0/1 (zeros when absent) and ``has_mask/<type>`` bool.
    """
    image = tf.io.decode_png(features["image"], channels=3)
    fov_mask = _decode_mask(features["fov_mask"])
    decoded = {
        "image": image,
        "fov_mask": fov_mask,
        **{k: features[k] for k in ("grade", "image_id", "patient_id", "eye", "dataset")},
    }
    if lesion_masks:
        for lesion in LESION_TYPES:
            png = features[MASK_PREFIX + lesion]
            present = tf.strings.length(png) > 0
            decoded[MASK_PREFIX + lesion] = tf.cond(
                present, lambda png=png: _decode_mask(png), lambda: tf.zeros_like(fov_mask)
            )
            decoded[HAS_MASK_PREFIX + lesion] = present
    return decoded


def shard_filename(split: str, index: int, count: int) -> str:
    """``<split>-00003-of-00012.tfrecord``."""
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def write_shard(path: str, examples: Iterable[bytes]) -> int:
    """Writes serialized examples to `path` atomically; returns how many were written.

    The shard is written under a temporary name and renamed when complete, so an interrupted
    run never leaves a partial shard under a final name.
    """
    temporary = f"{path}.tmp-{os.getpid()}"
    count = 0
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for example in examples:
                writer.write(example)
                count += 1
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
    return count


def list_shards(pattern_or_dir: str, split: str | None = None) -> list[str]:
    """Sorted shard paths: a glob pattern, or a `prepare` output folder and a split name.

    Raises
    ------
    FileNotFoundError
        When nothing matches.
    """
    if tf.io.gfile.isdir(pattern_or_dir):
        prefix = f"{split}-" if split else ""
        pattern = os.path.join(pattern_or_dir, f"{prefix}*{SHARD_SUFFIX}")
    else:
        pattern = pattern_or_dir
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"{pattern}: no TFRecord shards found")
    return paths
