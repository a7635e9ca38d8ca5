"""Weight-only int8 flatbuffers: which weights become int8, their rounding, LiteRT's outputs."""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from drscreen.export.weight_quantization import quantize_weights

SIZE = 32
THRESHOLD = 32768  # this small net's threshold (the default keeps all of it float)
# The int8 tensors of the quantized net (LiteRT layouts: OHWI filter, (out, in) dense weights)
# -> their channel axis.
QUANTIZED_AXES = {(64, 3, 3, 64): 0, (512, 64): 0, (SIZE, SIZE, 64): 2}


class _Net(tf.Module):
    """conv 3 -> 64 (small: stays float), conv 64 -> 64 + untied bias, dense 64 -> 512."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        self.weights = {name: tf.constant(value) for name, value in weights.items()}

    def forward(self, images, weights):
        x = tf.nn.leaky_relu(tf.nn.conv2d(images, weights["first"], 1, "SAME"), 0.01)
        x = tf.nn.conv2d(x, weights["second"], 1, "SAME") + weights["untied"]
        return tf.reduce_mean(x, axis=[1, 2]) @ weights["dense"]

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def predict(self, images):
        return {"out": self.forward(images, self.weights)}

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def positive(self, images):
        return {"out": tf.nn.relu(self.forward(images, self.weights))}


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    shapes = {"first": (3, 3, 3, 64), "second": (3, 3, 64, 64), "untied": (SIZE, SIZE, 64)}
    weights = {name: rng.normal(0, 0.1, shape).astype(np.float32) for name, shape in shapes.items()}
    weights["dense"] = rng.normal(0, 0.1, (64, 512)).astype(np.float32)
    weights["dense"][:, 5] = 0.0  # an all-zero channel
    return weights


def _convert(net: _Net, signatures=("predict",)) -> bytes:
    functions = [getattr(net, name).get_concrete_function() for name in signatures]
    return tf.lite.TFLiteConverter.from_concrete_functions(functions, net).convert()


@pytest.fixture(scope="module")
def converted():
    weights = _weights()
    net = _Net(weights)
    flatbuffer = _convert(net)
    return weights, net, flatbuffer, quantize_weights(flatbuffer, THRESHOLD)


def _int8_tensors(flatbuffer: bytes) -> tuple[Interpreter, list[dict]]:
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    return interpreter, [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]


def _by_shape(details: list[dict]) -> dict[tuple, dict]:
    return {tuple(int(n) for n in d["shape"]): d for d in details}


def test_large_weights_become_int8_with_one_scale_per_channel(converted):
    """Filters (per output channel), dense weights and the untied bias (per channel, last
    axis) at or above the threshold are int8; the 3 -> 64 filter stays float32."""
    _, _, original, quantized = converted
    assert 3 * 3 * 3 * 64 < THRESHOLD <= 3 * 3 * 64 * 64
    interpreter, details = _int8_tensors(quantized)
    shapes = _by_shape(details)
    assert set(shapes) == set(QUANTIZED_AXES)
    for shape, detail in shapes.items():
        parameters = detail["quantization_parameters"]
        axis = QUANTIZED_AXES[shape]
        assert parameters["quantized_dimension"] == axis
        assert len(parameters["scales"]) == shape[axis]
        assert not np.any(parameters["zero_points"])
    operators = [op["op_name"] for op in interpreter._get_ops_details()]
    assert operators.count("DEQUANTIZE") == 3
    float_filters = [
        d for d in interpreter.get_tensor_details()
        if d["dtype"] == np.float32 and tuple(d["shape"]) == (64, 3, 3, 3)
    ]  # fmt: skip
    assert float_filters
    # Each int8 weight replaces a float32 one: about 3 bytes saved per weight.
    int8_weights = sum(int(np.prod(d["shape"])) for d in details)
    assert len(original) - len(quantized) >= 2.9 * int8_weights


def test_rounding_is_within_half_a_step_and_the_largest_weight_exact(converted):
    """int8 * scale differs from each weight by at most half its channel's step; the
    largest |weight| of each channel is +-127 steps; an all-zero channel stays zero."""
    weights, _, _, quantized = converted
    interpreter, details = _int8_tensors(quantized)
    shapes = _by_shape(details)
    cases = [
        (weights["second"].transpose(3, 0, 1, 2), shapes[(64, 3, 3, 64)], 0),
        (weights["dense"].T, shapes[(512, 64)], 0),
        (weights["untied"], shapes[(SIZE, SIZE, 64)], 2),
    ]
    for original, detail, axis in cases:
        values = interpreter.get_tensor(detail["index"]).astype(np.float64)
        shape = [1] * values.ndim
        shape[axis] = -1
        scales = detail["quantization_parameters"]["scales"].reshape(shape)
        error = np.abs(values * scales - original)
        assert np.all(error <= scales / 2 * (1 + 1e-5))
        reduced = tuple(i for i in range(values.ndim) if i != axis)
        peaks = np.abs(values).max(axis=reduced)
        zero = np.abs(original).max(axis=reduced) == 0
        assert np.all(peaks[~zero] == 127) and np.all(peaks[zero] == 0)


def test_litert_computes_in_float_with_the_rounded_weights(converted):
    """The quantized file's output is TensorFlow's float computation with the weights it
    stores (int8 * scale), not that of the original weights."""
    weights, net, original, quantized = converted
    interpreter, details = _int8_tensors(quantized)
    shapes = _by_shape(details)
    rounded = dict(weights)
    for name, shape, layout in [
        ("second", (64, 3, 3, 64), (1, 2, 3, 0)),
        ("dense", (512, 64), (1, 0)),
    ]:
        detail = shapes[shape]
        scales = detail["quantization_parameters"]["scales"].reshape(-1, *[1] * (len(shape) - 1))
        values = interpreter.get_tensor(detail["index"]) * scales
        rounded[name] = values.transpose(layout).astype(np.float32)
    untied = shapes[(SIZE, SIZE, 64)]
    rounded["untied"] = (
        interpreter.get_tensor(untied["index"]) * (untied["quantization_parameters"]["scales"])
    )
    images = np.random.default_rng(4).uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    expected = net.forward(tf.constant(images), {k: tf.constant(v) for k, v in rounded.items()})
    unrounded = net.forward(tf.constant(images), net.weights).numpy()
    for content in (quantized, original):
        runner = Interpreter(model_content=content).get_signature_runner()
        outputs = runner(images=images)["out"]
        target = expected.numpy() if content is quantized else unrounded
        np.testing.assert_allclose(outputs, target, rtol=1e-4, atol=1e-5)
    assert np.abs(expected.numpy() - unrounded).max() > 1e-4  # the rounding is visible


def test_weights_shared_by_signatures_are_stored_once():
    """Two signatures reading the same weights: one int8 copy, both signatures work."""
    net = _Net(_weights())
    single = quantize_weights(_convert(net), THRESHOLD)
    double = quantize_weights(_convert(net, ("predict", "positive")), THRESHOLD)
    _, single_details = _int8_tensors(single)
    assert len(double) < len(single) + 0.1 * sum(int(np.prod(d["shape"])) for d in single_details)
    interpreter = Interpreter(model_content=double)
    images = np.random.default_rng(5).uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    once = interpreter.get_signature_runner("predict")(images=images)["out"]
    positive = interpreter.get_signature_runner("positive")(images=images)["out"]
    np.testing.assert_allclose(positive, np.maximum(once, 0), rtol=1e-5)


def test_nothing_below_min_elements_changes(converted):
    """A threshold above every weight leaves the flatbuffer's tensors float32."""
    _, _, original, _ = converted
    _, details = _int8_tensors(quantize_weights(original, min_elements=10**7))
    assert details == []
