"""The full-resolution evidence network: its layout by hand, the map at the input resolution,
the grade as the map's mean, Grad-CAM equal to the map, and the sparsity term by hand.

(The zoo's shared checks — battery, exact sensitivity, second order, `.keras` round trip —
run on it in `zoo_test.py`.)
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen.heatmaps.backprop import forward
from drscreen.heatmaps.gradcam import default_gradcam_layer, gradcam
from drscreen.models import build
from drscreen.models.evidence import evidence_sparsity


def _images(size: int, count: int = 2, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0, 255, (count, size, size, 3)), tf.float32)


def test_parameters_by_hand():
    """Width 16: conv1 5·5·3·16+16, conv2 3·3·16·32+32, conv3 3·3·32·64+64, conv4
    3·3·64·64+64, conv5 3·3·(32+64)·16+16, conv6 3·3·(3+16)·16+16, evidence 16+1, grade 1:
    77,890 at any input size; width 4: 304 + 296 + 1,168 + 2,320 + 868 + 256 + 5 + 1 = 5,218."""
    convs = [1_216, 4_640, 18_496, 36_928, 13_840, 2_752]
    assert build("unet_evidence").count_params() == sum(convs) + 17 + 1 == 77_890
    assert build("unet_evidence", input_size=96).count_params() == 77_890
    assert build("unet_evidence", input_size=64, width=4).count_params() == 5_218


def test_evidence_map_is_at_input_resolution_and_its_mean_is_the_grade():
    """evidence_act is (S, S, 1) = relu(e)² and grade = k · mean(evidence_act), exactly."""
    model = build("unet_evidence", input_size=64, width=4)
    grade = model.get_layer("grade")
    grade.kernel.assign([[1.7]])
    outputs, trace = forward(model, _images(64))
    evidence, evidence_map = trace.output_of("evidence"), trace.output_of("evidence_act")
    assert evidence_map.shape == (2, 64, 64, 1)
    np.testing.assert_array_equal(evidence_map.numpy(), np.maximum(evidence.numpy(), 0) ** 2)
    expected = 1.7 * evidence_map.numpy().mean(axis=(1, 2, 3))
    np.testing.assert_allclose(outputs.numpy()[:, 0], expected, rtol=1e-6)


@pytest.mark.parametrize(("position", "extent"), [((40, 40), (33, 33)), ((41, 41), (37, 37))])
def test_receptive_field_is_33_to_37_px(position, extent):
    """One evidence value depends on a 33 or 37 px window (by the stride phase), no further."""
    model = build("unet_evidence", input_size=96, width=4)
    names = [layer.name for layer in model.layers]
    chain = keras.Sequential(model.layers[: names.index("evidence") + 1])
    images = _images(96, count=1, seed=5)
    with tf.GradientTape() as tape:
        tape.watch(images)
        value = chain(images)[0, position[0], position[1], 0]
    support = np.argwhere(np.abs(tape.gradient(value, images).numpy()[0]).sum(-1) > 0)
    assert tuple(support.max(axis=0) - support.min(axis=0) + 1) == extent


def test_gradcam_on_the_evidence_activation_is_the_evidence_map():
    """Grad-CAM's default layer is evidence_act, and its map is k / S² times relu(e)²."""
    model = build("unet_evidence", input_size=64, width=4)
    model.get_layer("grade").kernel.assign([[2.5]])
    images = _images(64, seed=1)
    assert default_gradcam_layer(model) == "evidence_act"
    scores, heatmaps = gradcam(model, images)
    _, trace = forward(model, images)
    evidence_map = trace.output_of("evidence_act").numpy()[..., 0]
    assert evidence_map.std() > 0.1 * evidence_map.mean()  # a map with structure to compare
    np.testing.assert_allclose(heatmaps.numpy(), 2.5 / 64**2 * evidence_map, rtol=1e-5)


@pytest.mark.parametrize("size", [62, 0])
def test_input_side_must_be_a_multiple_of_4(size):
    """Sides the decoder cannot restore are refused by name."""
    with pytest.raises(ValueError, match=f"unet_evidence: input_size {size} must be a positive"):
        build("unet_evidence", input_size=size)


def test_evidence_sparsity_by_hand():
    """sqrt(|k|) · mean(relu(e)): e = [[2, -1], [0, 4]], k = 4 -> 2 · (2 + 0 + 0 + 4) / 4 = 3."""
    evidence = tf.constant([[2.0, -1.0], [0.0, 4.0]])[None, :, :, None]
    assert float(evidence_sparsity(evidence, tf.constant([[4.0]]))) == pytest.approx(3.0)


def test_evidence_sparsity_favours_concentrated_evidence_at_a_fixed_grade():
    """Same grade k·mean(relu(e)²): evidence on 1/4 of the positions costs half as much as
    spread evenly (sqrt of the share), and trading k against e changes nothing."""
    spread = tf.ones((1, 4, 4, 1))
    concentrated = tf.constant(np.kron([[1, 0], [0, 0]], np.ones((2, 2))), tf.float32)
    concentrated = 2 * concentrated[None, :, :, None]  # mean of relu(e)² = 4 · 4 / 16 = 1
    k = tf.constant([[3.0]])
    assert float(evidence_sparsity(spread, k)) == pytest.approx(3**0.5)
    assert float(evidence_sparsity(concentrated, k)) == pytest.approx(3**0.5 / 2)
    assert float(evidence_sparsity(spread / 10, k * 100)) == pytest.approx(3**0.5)
