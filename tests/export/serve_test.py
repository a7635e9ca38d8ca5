"""A real export served by `drscreen serve` answers like the SavedModel loaded in process."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from drscreen.serving.client import GrpcClient
from tests.export.served import drscreen_serve

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")


def test_drscreen_serve_returns_the_saved_model_outputs(exported, photographs, tmp_path):
    """gRPC serving_default and predict_float responses equal direct signature calls."""
    encoded, images, _ = photographs
    base = tmp_path / "base"
    shutil.copytree(exported.path, base / "1")
    with drscreen_serve(base, tmp_path / "server.log") as address:
        direct = tf.saved_model.load(exported.path).signatures
        with GrpcClient(address, "drscreen") as client:
            served_bytes = client.predict(encoded, signature="serving_default")
            served_float = client.predict(images, signature="predict_float")
        expected_bytes = direct["serving_default"](images=tf.constant(encoded))
        expected_float = direct["predict_float"](images=tf.constant(images))
    for served, expected in ((served_bytes, expected_bytes), (served_float, expected_float)):
        assert sorted(served) == ["grade", "heatmap", "lesions", "quality", "score"]
        for name, value in expected.items():
            np.testing.assert_allclose(served[name], value.numpy(), rtol=1e-5, atol=1e-7)
