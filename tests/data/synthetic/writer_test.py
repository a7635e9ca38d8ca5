"""Tests for the dataset writer: exact layout, CSV headers, byte-identical parallel output."""

import csv
import json
import pathlib

import cv2
import numpy as np
import pytest

from drscreen.data.lesions import LESION_TYPES
from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.writer import write_dataset

_CONFIG = SynthConfig(n=5, size=64, seed=7, grade_mix=(0.2, 0.2, 0.2, 0.2, 0.2))


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        _CONFIG, tmp_path_factory.mktemp("synth") / "out", workers=1, progress=False
    )


def test_layout_is_exact(dataset):
    """trainLabels.csv, lesions.csv, synth.json, one JPEG per image, one PNG per type/image."""
    names = ["1_left", "1_right", "2_left", "2_right", "3_left"]
    expected = {"trainLabels.csv", "lesions.csv", "synth.json"}
    expected |= {f"train/{name}.jpeg" for name in names}
    expected |= {f"masks/{kind}/{name}.png" for kind in LESION_TYPES for name in names}
    assert set(_files(dataset)) == expected


def test_labels_and_lesion_tables(dataset):
    """Headers exactly as specified; rows in patient order; areas are mask pixel counts."""
    with open(dataset / "trainLabels.csv") as f:
        labels = list(csv.reader(f))
    assert labels[0] == ["image", "level"]
    assert [row[0] for row in labels[1:]] == ["1_left", "1_right", "2_left", "2_right", "3_left"]
    assert all(row[1] in "01234" for row in labels[1:])
    with open(dataset / "lesions.csv") as f:
        rows = list(csv.DictReader(f))
    with open(dataset / "lesions.csv") as f:
        assert f.readline().strip() == "image,lesion_type,center_x,center_y,radius,area"
    for name, _ in labels[1:]:
        for kind in LESION_TYPES:
            mask = cv2.imread(str(dataset / "masks" / kind / f"{name}.png"), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (64, 64) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}
            areas = [
                int(r["area"]) for r in rows if r["image"] == name and r["lesion_type"] == kind
            ]
            assert sum(areas) == int((mask == 255).sum())


def test_photographs_are_square_rgb_jpegs(dataset):
    for path in (dataset / "train").iterdir():
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64, 3)
        assert path.read_bytes()[:2] == b"\xff\xd8"


def test_synth_json_records_the_resolved_config(dataset):
    summary = json.loads((dataset / "synth.json").read_text())
    config = summary["config"]
    assert (config["n"], config["size"], config["seed"]) == (5, 64, 7)
    assert config["difficulty"] == "standard"
    assert config["params"]["lesion_contrast"] == _CONFIG.params.lesion_contrast
    assert config["grade_mix"] == pytest.approx([0.2] * 5)
    assert summary["drscreen_version"]
    with open(dataset / "trainLabels.csv") as f:
        levels = [row["level"] for row in csv.DictReader(f)]
    assert summary["grade_counts"] == {str(g): levels.count(str(g)) for g in range(5)}


def test_rewriting_with_more_workers_is_byte_identical(dataset, tmp_path):
    """Two writes of the same config are identical byte for byte, 1 worker or 2."""
    again = write_dataset(_CONFIG, tmp_path / "again", workers=2, progress=False)
    assert _files(again) == _files(dataset)


def test_progress_goes_to_stderr(tmp_path, capsys):
    write_dataset(SynthConfig(n=1, size=64), tmp_path, workers=1, progress=True)
    captured = capsys.readouterr()
    assert "synth: 1/1 images" in captured.err and captured.out == ""


def test_bad_worker_count_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        write_dataset(_CONFIG, tmp_path, workers=0)
