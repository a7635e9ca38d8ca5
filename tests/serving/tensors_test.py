"""Wire encodings: TensorProto round trips and TF Serving's REST JSON formats."""

import base64

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from drscreen.serving.errors import ServingError
from drscreen.serving.tensors import (
    format_predict_response,
    json_tensor,
    json_to_array,
    parse_predict_inputs,
    proto_tensor,
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


def _proto(dtype: int, shape: list[int], **values):
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    for field, entries in values.items():
        if isinstance(entries, bytes):
            setattr(proto, field, entries)
        else:
            getattr(proto, field).extend(entries)
    return proto


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (_proto(types_pb2.DT_FLOAT, [64, 1024, 1024, 3], float_val=[0.0]),
         "shape [64, 1024, 1024, 3] holds 201326592 values but the tensor carries 1 float_val"),
        (_proto(types_pb2.DT_STRING, [1000], string_val=[b"x"]), "carries 1 string_val"),
        (_proto(types_pb2.DT_STRING, [-5], string_val=[b"x"]), "shape [-5] has a negative"),
        (_proto(types_pb2.DT_FLOAT, [2], float_val=[1.0, 2.0, 3.0]), "holds 2 values"),
        (_proto(types_pb2.DT_FLOAT, [2], tensor_content=b"\0" * 12), "carries 12 bytes"),
        (_proto(types_pb2.DT_FLOAT, [1], int_val=[1]), "carries 0 float_val"),
        (_proto(types_pb2.DT_COMPLEX64, [2], scomplex_val=[1.0, 2.0]), "carries 2 scomplex_val"),
        (_proto(0, [1], float_val=[1.0]), "unknown dtype enum 0"),
        (_proto(types_pb2.DT_VARIANT, [1]), "variant is not supported"),
    ],
    ids=["805 MB from one float", "1000 strings from one", "negative dimension", "extra values",
         "short tensor_content", "wrong value field", "complex pairs", "no dtype", "variant"],
)  # fmt: skip
def test_a_tensor_whose_values_do_not_fill_its_shape_is_refused_unread(proto, message):
    """TF Serving's rule: exactly one value per element (make_ndarray would pad with the last
    value); refused from the lengths alone, before any array exists."""
    with pytest.raises(ServingError) as raised:
        proto_tensor(proto, "images")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.message
    with pytest.raises(ServingError):
        to_ndarray(proto, "images")


def test_a_tensor_that_fills_its_shape_is_declared_and_materialised():
    """Values as a field, as tensor_content, complex pairs and an empty tensor all decode."""
    floats = proto_tensor(_proto(types_pb2.DT_FLOAT, [2, 1], float_val=[1.5, -2.0]), "x")
    assert (floats.dtype, floats.shape) == (tf.float32, (2, 1))
    np.testing.assert_array_equal(floats.materialise(), [[1.5], [-2.0]])
    content = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(
        proto_tensor(to_tensor_proto(content), "x").materialise(), content
    )
    pair = proto_tensor(_proto(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1.0, 2.0]), "x")
    assert pair.materialise().tolist() == [1 + 2j]
    assert proto_tensor(_proto(types_pb2.DT_STRING, [0]), "x").materialise().shape == (0,)


def test_json_strings_that_are_not_unicode_or_ascii_base64_are_invalid_argument():
    """A lone surrogate in a text value, and non-ASCII characters in b64, are client errors
    (they were answered 500)."""
    for value, message in (("\ud800", "not valid Unicode"), ({"b64": "\u00e9"}, "invalid base64")):
        with pytest.raises(ServingError) as raised:
            json_to_array([value], STRING, "images")
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert message in raised.value.message


def test_json_tensor_declares_the_shape_of_its_nested_lists():
    """The declared shape follows the first elements; strings and b64 objects are leaves."""
    assert json_tensor([[1.0, 2.0]] * 3, np.float32, "x").shape == (3, 2)
    assert json_tensor([{"b64": "AA=="}] * 200, STRING, "x").shape == (200,)
    assert json_tensor([], np.float32, "x").shape == (0,)
    assert json_tensor(1.5, np.float32, "x").shape == ()
