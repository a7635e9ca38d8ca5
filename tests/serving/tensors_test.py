"""Wire encodings: TensorProto round trips and TF Serving's REST JSON formats."""

import base64

import grpc
import numpy as np
import pytest

from drscreen.serving.errors import ServingError
from drscreen.serving.tensors import (
    format_predict_response,
    json_to_array,
    parse_predict_inputs,
    request_signature_name,
    to_ndarray,
    to_tensor_proto,
)

STRING = np.dtype(object)


def _parse(body: dict, dtypes: dict) -> tuple[dict[str, np.ndarray], bool]:
    """parse_predict_inputs, with every declared tensor materialised."""
    declared, row_format = parse_predict_inputs(body, dtypes)
    return {name: tensor.materialise() for name, tensor in declared.items()}, row_format


def test_tensor_proto_round_trips_floats_and_bytes():
    """Float arrays and object arrays of bytes survive encode → decode unchanged."""
    floats = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(to_ndarray(to_tensor_proto(floats), "x"), floats)
    strings = np.array([b"\x89PNG\x00", b"\xff\xd8"], dtype=object)
    assert to_ndarray(to_tensor_proto(strings), "x").tolist() == strings.tolist()


def test_row_format_with_b64_instances_of_a_single_input():
    """`instances` of {"b64": ...} decode to the bytes of the single input."""
    body = {"instances": [{"b64": base64.b64encode(b"\x00\x01").decode()}, "text"]}
    inputs, row_format = _parse(body, {"images": STRING})
    assert row_format
    assert inputs["images"].tolist() == [b"\x00\x01", b"text"]


def test_row_format_with_named_inputs_stacks_instances():
    """Objects of named inputs stack along a new batch dimension."""
    body = {"instances": [{"a": [1, 2], "b": 3}, {"a": [4, 5], "b": 6}]}
    inputs, _ = _parse(body, {"a": np.float32, "b": np.int64})
    np.testing.assert_array_equal(inputs["a"], np.array([[1, 2], [4, 5]], np.float32))
    assert inputs["a"].dtype == np.float32
    np.testing.assert_array_equal(inputs["b"], [3, 6])


def test_columnar_format_single_and_named():
    """`inputs` holds one batched value, or an object of them."""
    single, row_format = _parse({"inputs": [[1.5]]}, {"x": np.float32})
    assert not row_format and single["x"].shape == (1, 1)
    named, _ = _parse({"inputs": {"x": [2.0]}}, {"x": np.float32})
    np.testing.assert_array_equal(named["x"], [2.0])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [1], "inputs": [1]}, "exactly one of"),
        ({"instances": []}, "non-empty list"),
        ({"instances": [{"x": 1}, 2]}, "mixes"),
        ({"instances": [{"x": 1}, {"y": 2}]}, "instance 1 has inputs"),
        ({"inputs": {"y": [1]}}, "input 'y' is not an input"),
        ({"inputs": [[1, 2], [3]]}, "ragged"),
        ({"inputs": ["a"]}, "Type: String is not of expected type: float32"),
        ({"inputs": [1.0, None]}, "Type: Null is not of expected type: float32"),
        ({"inputs": [[True, 2.0]]}, "Type: Bool is not of expected type: float32"),
        ({"inputs": [False]}, "Type: Bool is not of expected type: float32"),
        ({"inputs": [{"b64": "AA=="}]}, "Type: Object is not of expected type: float32"),
    ],
)
def test_malformed_bodies_are_invalid_argument(body, message):
    """Each malformed body raises INVALID_ARGUMENT with a message naming the problem."""
    with pytest.raises(ServingError) as raised:
        _parse(body, {"x": np.float32})
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.message


def test_integers_are_floats_but_floats_are_not_integers():
    """A JSON integer is a valid float, as in TF Serving; 1.5 is not an int32."""
    np.testing.assert_array_equal(json_to_array([1, 2.5], np.float32, "x"), [1.0, 2.5])
    assert json_to_array([1, 2.5], np.float32, "x").dtype == np.float32
    with pytest.raises(ServingError, match="Type: Number is not of expected type: int32"):
        json_to_array([1, 2.5], np.int32, "x")


@pytest.mark.parametrize("dtype", [np.float32, STRING])
def test_lists_nested_deeper_than_a_tensor_are_rejected(dtype):
    """1,000 levels of nesting are INVALID_ARGUMENT, not a RecursionError."""
    value = "a" if dtype is STRING else 0.0
    for _ in range(1000):
        value = [value]
    with pytest.raises(ServingError, match="nested deeper than 64 levels"):
        json_to_array(value, dtype, "images")


def test_string_inputs_reject_ragged_lists_bad_base64_and_numbers():
    """String tensors need rectangular lists of strings or valid base64."""
    for value, message in [
        ([["a"], ["b", "c"]], "ragged"),
        ([{"b64": "!!"}], "invalid base64"),
        ([1], "got int"),
    ]:
        with pytest.raises(ServingError, match=message):
            json_to_array(value, STRING, "images")


def test_signature_name_defaults_to_serving_default():
    """A body without signature_name targets serving_default; a non-object is rejected."""
    assert request_signature_name({"instances": []}) == "serving_default"
    assert request_signature_name({"signature_name": "predict_float"}) == "predict_float"
    with pytest.raises(ServingError, match="JSON object"):
        request_signature_name([1])


def test_response_formats_match_tf_serving():
    """Row answers per-instance 'predictions'; columnar answers 'outputs'."""
    outputs = {"score": np.array([0.5, 0.25], np.float32), "grade": np.array([1.0, 2.0])}
    assert format_predict_response(outputs, row_format=True) == {
        "predictions": [{"grade": 1.0, "score": 0.5}, {"grade": 2.0, "score": 0.25}]
    }
    assert format_predict_response(outputs, row_format=False) == {
        "outputs": {"grade": [1.0, 2.0], "score": [0.5, 0.25]}
    }
    single = {"score": np.array([0.5], np.float32)}
    assert format_predict_response(single, row_format=True) == {"predictions": [0.5]}
    assert format_predict_response(single, row_format=False) == {"outputs": [0.5]}


def test_string_outputs_are_base64_only_when_named_bytes():
    """An output named *_bytes is {"b64": ...}; other string outputs are text."""
    outputs = {
        "mask_bytes": np.array([b"\xff"], dtype=object),
        "label": np.array([b"referable"], dtype=object),
    }
    assert format_predict_response(outputs, row_format=False) == {
        "outputs": {"label": ["referable"], "mask_bytes": [{"b64": "/w=="}]}
    }


def test_row_format_needs_a_shared_batch_size():
    """Outputs of different batch sizes cannot be split into instances."""
    outputs = {"a": np.zeros(2), "b": np.zeros(3)}
    with pytest.raises(ServingError, match="columnar"):
        format_predict_response(outputs, row_format=True)
