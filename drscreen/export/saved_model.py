"""The TF Serving SavedModel: versioned directories, signatures, warmup requests, description.

Owns the layout TensorFlow Serving reads: ``EXPORT_BASE/<N>/`` with ``saved_model.pb``,
``variables/``, ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of
`PredictionLog`s, one `PredictRequest` per signature, which TF Serving replays before it
serves a new version) and ``drscreen_export.json`` (what the export computes). Versions are
never overwritten: the next version is one more than the largest integer directory, and an
explicit version that exists is refused. Must not convert to other formats.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from drscreen.export.signatures import (
    INPUT_NAME,
    PREDICT_FLOAT,
    PREDICT_SCORE,
    SERVING_DEFAULT,
    ScreeningFunctions,
)

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
DESCRIPTION_FILE = "drscreen_export.json"
DESCRIPTION_FORMAT = 1


def existing_versions(export_base: str) -> list[int]:
    """Integer-named directories under ``export_base``, ascending (any content)."""
    if not os.path.isdir(export_base):
        return []
    return sorted(
        int(entry)
        for entry in os.listdir(export_base)
        if entry.isdigit() and os.path.isdir(os.path.join(export_base, entry))
    )


def resolve_version(export_base: str, version: int | None = None) -> int:
    """The version to write: ``version``, or one more than the largest existing one (or 1).

    Raises
    ------
    FileExistsError
        If ``export_base/<version>`` exists: exports are never overwritten.
    ValueError
        If ``version`` is not a positive integer.
    """
    if version is None:
        versions = existing_versions(export_base)
        return versions[-1] + 1 if versions else 1
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    path = os.path.join(export_base, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists; exports are never overwritten")
    return version


def write_saved_model(functions: ScreeningFunctions, path: str) -> None:
    """Write the SavedModel with the three signatures of `drscreen.export.signatures`.

    Signatures are written with `keras.export.ExportArchive`, so TF Serving sees them with
    method ``tensorflow/serving/predict``; each returns a dict of named outputs.
    """
    archive = keras.export.ExportArchive()
    archive.track(functions.model)
    if functions.lesion_model is not None:
        archive.track(functions.lesion_model)
    for name, (function, input_signature) in functions.endpoints().items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    archive.write_out(path, verbose=False)


def _request(model_name: str, signature: str, value: tf.Tensor | np.ndarray | list):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def warmup_requests(
    model_name: str, encoded: list[bytes], images: np.ndarray
) -> list[prediction_log_pb2.PredictionLog]:
    """One `PredictionLog` per signature: the encoded photographs, then their float images."""
    return [
        _request(model_name, SERVING_DEFAULT, np.array(encoded, dtype=object)),
        _request(model_name, PREDICT_FLOAT, images.astype(np.float32)),
        _request(model_name, PREDICT_SCORE, images.astype(np.float32)),
    ]


def write_warmup_requests(
    saved_model_dir: str, requests: list[prediction_log_pb2.PredictionLog]
) -> str:
    """Write ``assets.extra/tf_serving_warmup_requests`` and return its path."""
    directory = os.path.join(saved_model_dir, WARMUP_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            writer.write(request.SerializeToString())
    return path


def write_description(version_dir: str, description: dict) -> str:
    """Write ``drscreen_export.json`` (sorted keys, format number added) and return its path."""
    path = os.path.join(version_dir, DESCRIPTION_FILE)
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"format": DESCRIPTION_FORMAT, **description}, file, indent=2, sort_keys=True)
        file.write("\n")
    return path


def read_description(version_dir: str) -> dict:
    """The ``drscreen_export.json`` of an export version directory.

    Raises
    ------
    FileNotFoundError
        If the directory holds no description (not a drscreen export).
    """
    path = os.path.join(version_dir, DESCRIPTION_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{version_dir} is not a drscreen export: no {DESCRIPTION_FILE}")
    with open(path, encoding="utf-8") as file:
        return json.load(file)
