"""Both server protocols over the bad-input matrix, against a real drscreen export.

Every case of `tests.bad_inputs` goes to ``serving_default`` over gRPC and REST: a rejected
photograph is INVALID_ARGUMENT (HTTP 400) with the commands' reason and its batch element
named, an accepted one is scored, and the same photograph stored differently gets the same
score, within 5 % of what turning it changes (the shared export's model grades the
photograph upright and turned far apart, so an ignored EXIF orientation fails). Float
signatures refuse NaN, inf and pixels outside [0, 255]. The server keeps serving.
"""

import io
import os
import socket

import grpc
import numpy as np
import pytest
from PIL import Image

from drscreen.serving.batching import BatchingConfig
from drscreen.serving.client import GrpcClient, RestClient
from drscreen.serving.errors import ServingError
from drscreen.serving.server import ModelServer, ServerConfig
from tests import bad_inputs
from tests.fixture_model import INPUT_SIZE, orientation_photographs

# one xdist worker builds the shared model and its export
pytestmark = pytest.mark.xdist_group("shared_export")

CASES = bad_inputs.cases()
LOSSY_FRACTION = 0.05
"""A lossy copy's largest score difference, as a fraction of the orientation gap (measured:
the EXIF case 0.005 from its reference, the gap 0.45, the pixels as stored 0.50)."""
LOSSLESS = 1e-6
"""A lossless copy's largest score difference."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clients(exported):
    """gRPC and REST clients of an in-process server of the shared export."""
    config = ServerConfig(
        model_name="drscreen", model_base_path=os.path.dirname(exported.path), port=_free_port(),
        rest_api_port=_free_port(), file_system_poll_wait_seconds=0,
        batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=2000),
    )  # fmt: skip
    server = ModelServer(config)
    server.start()
    grpc_client = GrpcClient(f"127.0.0.1:{config.port}", "drscreen")
    rest_client = RestClient(f"http://127.0.0.1:{config.rest_api_port}", "drscreen")
    yield {"grpc": grpc_client, "rest": rest_client}
    grpc_client.close()
    server.stop()


def _score(clients, data: bytes) -> float:
    return float(clients["grpc"].predict([data])["score"][0])


@pytest.fixture(scope="module")
def scores(clients) -> dict[str, float]:
    """The gRPC score of each accepted case, sent alone."""
    return {name: _score(clients, CASES[name].data) for name in bad_inputs.accepted()}


@pytest.fixture(scope="module")
def orientation_gap(clients) -> float:
    """How far apart the matrix photograph scores upright and turned (stored as PNG)."""
    upright, turned = orientation_photographs()
    return abs(_score(clients, turned) - _score(clients, upright))


def test_the_photograph_turned_scores_far_from_upright(orientation_gap):
    """The model tells the orientations apart by more than a lossy copy may differ."""
    assert orientation_gap > 0.3


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
@pytest.mark.parametrize("name", bad_inputs.rejected())
def test_rejected_photograph_names_its_element_and_reason(clients, protocol, name):
    """[good photograph, case]: INVALID_ARGUMENT naming element 1 and the case's reason."""
    client = clients[protocol]
    with pytest.raises(ServingError) as raised:
        client.predict([CASES["JPEG"].data, CASES[name].data])
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rejected element 1 of 2" in raised.value.message
    assert CASES[name].serving_reason in raised.value.message
    assert client.predict([CASES["JPEG"].data])["score"].shape == (1,)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
@pytest.mark.parametrize("name", bad_inputs.accepted())
def test_accepted_photograph_is_scored_as_the_original(
    clients, scores, orientation_gap, protocol, name
):
    """Accepted cases are scored; trailing bytes, 16 bits, alpha and EXIF change nothing."""
    outputs = clients[protocol].predict([CASES[name].data])
    assert outputs["heatmap"].shape == (1, INPUT_SIZE, INPUT_SIZE)
    assert np.isfinite(outputs["heatmap"]).all()
    assert outputs["score"][0] == pytest.approx(scores[name], abs=LOSSLESS)
    case = CASES[name]
    if case.same_as:
        expected = scores[case.same_as]
        assert outputs["score"][0] == pytest.approx(expected, abs=_tolerance(case, orientation_gap))


def _tolerance(case: bad_inputs.Case, orientation_gap: float) -> float:
    """Lossless copies score alike; a lossy one within `LOSSY_FRACTION` of the gap."""
    return LOSSLESS if case.file_name.endswith(".png") else LOSSY_FRACTION * orientation_gap


def test_ignoring_the_exif_orientation_would_fail(clients, scores, orientation_gap):
    """The EXIF case's pixels as stored (what a decoder ignoring the tag sees) score outside
    the tolerance that the EXIF-rotated case meets."""
    case = CASES["EXIF-rotated"]
    as_stored = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(io.BytesIO(case.data)))).save(as_stored, "PNG")
    ignored = _score(clients, as_stored.getvalue())
    assert abs(ignored - scores[case.same_as]) > _tolerance(case, orientation_gap)


FLOAT_CASES = {"NaN": (np.nan, "NaN or infinite"), "inf": (np.inf, "NaN or infinite"),
               "1e6": (1e6, "values from 100 to 1e+06")}  # fmt: skip


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
@pytest.mark.parametrize("signature", ["predict_float", "predict_score"])
@pytest.mark.parametrize("case", sorted(FLOAT_CASES))
def test_float_signatures_refuse_non_pixel_values(clients, protocol, signature, case):
    """NaN, inf or 1e6 in one image of two: INVALID_ARGUMENT naming element 1."""
    value, problem = FLOAT_CASES[case]
    images = np.full((2, INPUT_SIZE, INPUT_SIZE, 3), 100.0, np.float32)
    images[1, 3, 4, 0] = value
    client = clients[protocol]
    with pytest.raises(ServingError) as raised:
        client.predict(images, signature=signature)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"element 1: {problem}" in raised.value.message
    assert client.predict(images[:1], signature=signature)["score"].shape == (1,)
