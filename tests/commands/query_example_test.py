"""serving/query_example.py answers for every photograph: unreadable and refused ones are
named and the others still graded; an ungradable one is "cannot grade — retake", no score.

The server is replaced by a fake that answers like one (outputs by photograph, and a refusal
of a whole batch holding a photograph it cannot decode); tests/serving runs the script
against a real server."""

import importlib.util
import os
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from absl import flags

from drscreen.serving.errors import ServingError
from tests.data.fundus_test import draw_fundus

SCRIPT = Path(__file__).resolve().parents[2] / "serving" / "query_example.py"


@pytest.fixture
def query_example():
    """The script as a module, its flags removed again afterwards (they are global)."""
    before = set(flags.FLAGS)
    spec = importlib.util.spec_from_file_location("query_example_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)


def _photographs(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, quality in (("good", 0.9), ("blurred", 0.1), ("odd", 0.8)):
        paths[name] = folder / f"{name}.png"
        image = draw_fundus(96, 128, (64, 48), 40, seed=int(quality * 10), noise=4.0)
        cv2.imwrite(str(paths[name]), image)
    paths["broken"] = folder / "broken.jpg"
    paths["broken"].write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    return paths


def test_every_photograph_gets_an_answer(query_example, tmp_path, monkeypatch, capsys):
    paths = _photographs(tmp_path)
    quality = {paths["good"].read_bytes(): 0.9, paths["blurred"].read_bytes(): 0.1}
    odd = paths["odd"].read_bytes()
    requests = []

    def fake_predict(encoded):
        requests.append(len(encoded))
        if odd in encoded:  # the server refuses a batch holding a photograph it cannot use
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "not a decodable image")
        heatmaps = np.random.default_rng(0).random((len(encoded), 32, 32)).astype(np.float32)
        return {
            "score": np.full(len(encoded), 0.75, np.float32),
            "grade": np.full(len(encoded), 2.5, np.float32),
            "quality": np.array([quality[data] for data in encoded], np.float32),
            "heatmap": heatmaps,
        }

    monkeypatch.setattr(query_example, "_predict", fake_predict)
    out = tmp_path / "out"
    flags.FLAGS(["query_example", f"--output_dir={out}", "--quality_threshold=0.5"])
    order = ("good", "broken", "blurred", "odd")
    with pytest.raises(SystemExit) as exit_info:
        query_example.main(["query_example", *(str(paths[name]) for name in order)])
    assert "2 of the 4 photographs could not be read or were refused" in str(exit_info.value)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{paths['broken']}: cannot grade — truncated or corrupt JPEG")
    assert lines[1] == (
        f"{paths['good']}: score=0.7500 grade=2.500 quality=0.900 -> {out / 'good_heatmap.png'}"
    )
    assert lines[2] == (
        f"{paths['blurred']}: cannot grade — retake (quality 0.100 <= 0.500) -> "
        f"{out / 'blurred_heatmap.png'}"
    )
    assert lines[3] == (
        f"{paths['odd']}: cannot grade — refused by the server: INVALID_ARGUMENT: not a "
        "decodable image"
    )
    assert requests == [3, 1, 1, 1]  # the batch, then one request per photograph
    assert sorted(os.listdir(out)) == ["blurred_heatmap.png", "good_heatmap.png"]
    assert "score" not in lines[2]


def test_the_default_threshold_is_said(query_example, tmp_path, monkeypatch, capsys):
    """Without --quality_threshold the shipped gate's threshold is used, and the first line
    says so."""
    paths = _photographs(tmp_path)

    def fake_predict(encoded):
        return {
            "score": np.array([0.2], np.float32),
            "grade": np.array([0.4], np.float32),
            "quality": np.array([0.99], np.float32),
            "heatmap": np.ones((1, 32, 32), np.float32),
        }

    monkeypatch.setattr(query_example, "_predict", fake_predict)
    flags.FLAGS(["query_example", f"--output_dir={tmp_path / 'out'}"])
    query_example.main(["query_example", str(paths["good"])])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("cannot grade at quality <= 0.521: drscreen's shipped gate")
