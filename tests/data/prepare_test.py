"""Tests of `prepare` and `drscreen prepare` on a tiny Kaggle-layout folder with bad files."""

import json
import os

import cv2
import numpy as np
import pytest

from drscreen import cli
from drscreen.data import pipeline
from drscreen.data.prepare import Manifest, PrepareConfig, PrepareError, prepare_dataset
from drscreen.data.readers import DatasetProblemsError
from drscreen.data.sources import PreparedSplit
from drscreen.data.splits import Splits
from tests.data.fundus_test import draw_fundus

GOOD = {f"{p}_{eye}": (p + (eye == "right")) % 5 for p in range(1, 6) for eye in ("left", "right")}


def _kaggle_folder(root, with_missing_label: bool = True) -> str:
    train = root / "train"
    train.mkdir(parents=True)
    rows = ["image,level"]
    for i, (name, grade) in enumerate(GOOD.items()):
        image = draw_fundus(48, 64, (32, 24), 22, (120 + 10 * i, 60, 20))
        cv2.imwrite(str(train / f"{name}.jpeg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append(f"{name},{grade}")
    good_bytes = (train / "1_left.jpeg").read_bytes()
    (train / "90_left.jpeg").write_bytes(b"\x00garbage, not a JPEG" * 10)
    (train / "91_left.jpeg").write_bytes(b"")
    (train / "92_left.jpeg").write_bytes(good_bytes[: len(good_bytes) // 2])
    cv2.imwrite(str(train / "93_left.jpeg"), np.full((48, 64), 90, np.uint8))
    rows += ["90_left,0", "91_left,1", "92_left,2", "93_left,3"]
    if with_missing_label:
        cv2.imwrite(str(train / "94_left.jpeg"), draw_fundus(48, 64, (32, 24), 22))
        rows.append("94_left,")
    (root / "trainLabels.csv").write_text("\n".join(rows) + "\n")
    return str(root)


def _config(data_dir: str, out_dir: str, **overrides) -> PrepareConfig:
    values = dict(dataset="kaggle", data_dir=data_dir, out_dir=out_dir, image_size=16, shard_size=3)
    values.update(overrides)
    return PrepareConfig(**values)


def test_prepare_writes_shards_and_lists_bad_inputs(tmp_path):
    """Good images land in shards by patient; each bad input is listed with its reason."""
    data = _kaggle_folder(tmp_path / "kaggle")
    out = str(tmp_path / "out")
    manifest = prepare_dataset(_config(data, out))

    reasons = {os.path.basename(s["path"]).split(":")[0]: s["reason"] for s in manifest.skipped}
    assert "corrupt" in reasons["90_left.jpeg"] or "decodable" in reasons["90_left.jpeg"]
    assert reasons["91_left.jpeg"] == "empty file"
    assert "truncated" in reasons["92_left.jpeg"]
    assert "grayscale" in reasons["93_left.jpeg"]
    assert any("missing grade" in s["reason"] for s in manifest.skipped)
    assert len(manifest.skipped) == 5

    assert sum(split["count"] for split in manifest.splits.values()) == len(GOOD)
    grades = {}
    for split in manifest.splits.values():
        for grade, n in split["grades"].items():
            grades[int(grade)] = grades.get(int(grade), 0) + n
        assert split["datasets"] in ({"kaggle": split["count"]}, {})
    assert grades == {g: list(GOOD.values()).count(g) for g in set(GOOD.values())}
    assert Manifest.load(out) == manifest
    assert json.load(open(os.path.join(out, "manifest.json")))["image_size"] == 16

    seen = {}
    config = pipeline.PipelineConfig(image_size=16, batch_size=4)
    for split in ("train", "validation", "test"):
        for batch in pipeline.dataset_for_evaluation(PreparedSplit(out, split), config):
            for image_id, grade, image in zip(
                batch["image_id"].numpy(),
                batch["grade"].numpy(),
                batch["image"].numpy(),
                strict=True,
            ):
                seen[image_id.decode()] = (split, grade)
                assert image.shape == (16, 16, 3) and image[8, 8, 0] > 100
    assert {k: g for k, (_, g) in seen.items()} == GOOD
    for p in range(1, 6):
        assert seen[f"{p}_left"][0] == seen[f"{p}_right"][0]  # both eyes in one split
    splits = Splits.load(out)
    assert (splits.made_by, splits.seed, splits.val_fraction) == ("drscreen prepare", 0, 0.15)
    for split in ("train", "validation", "test"):  # exactly the images written, by split
        assert sorted(splits.ids(split)) == sorted(k for k, (s, _) in seen.items() if s == split)
    assert not [name for name in os.listdir(out) if ".tmp" in name]


def test_strict_stops_on_label_problem_and_on_bad_image(tmp_path):
    """--strict: a missing label stops the reader; a corrupt image stops prepare, named."""
    with pytest.raises(DatasetProblemsError, match="missing grade"):
        prepare_dataset(_config(_kaggle_folder(tmp_path / "a"), str(tmp_path / "o1"), strict=True))
    data = _kaggle_folder(tmp_path / "b", with_missing_label=False)
    with pytest.raises(PrepareError, match=r"9[0-3]_left\.jpeg"):
        prepare_dataset(_config(data, str(tmp_path / "o2"), strict=True))


def test_cli_strict_exits_with_clear_error(tmp_path, capsys):
    """`drscreen prepare --strict` exits non-zero with the offending file in the message."""
    data = _kaggle_folder(tmp_path / "k", with_missing_label=False)
    argv = [
        "drscreen",
        "prepare",
        "--dataset=kaggle",
        f"--data={data}",
        f"--out={tmp_path / 'out'}",
        "--size=16",
        "--strict",
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert "drscreen prepare:" in str(exit_info.value.code)
    assert "_left.jpeg" in str(exit_info.value.code)


def test_config_validation():
    """Bad sizes and fractions are refused with the field named."""
    with pytest.raises(ValueError, match="shard_size"):
        PrepareConfig("kaggle", "d", "o", shard_size=0)
    with pytest.raises(ValueError, match="val_fraction"):
        PrepareConfig("kaggle", "d", "o", val_fraction=0.6, test_fraction=0.5)


def test_cli_names_each_skipped_file_and_where_the_list_is(tmp_path, capsys):
    """`drscreen prepare` prints every skipped input with its reason, and the manifest path."""
    data = _kaggle_folder(tmp_path / "k")
    out = tmp_path / "out"
    argv = ["drscreen", "prepare", "--dataset=kaggle", f"--data={data}", f"--out={out}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--size=16"])
    assert exit_info.value.code in (0, None)
    captured = capsys.readouterr()
    for name in ("90_left.jpeg", "91_left.jpeg: empty file", "92_left.jpeg", "93_left.jpeg"):
        assert f"skipped {os.path.join(data, 'train', name)}" in captured.err
    assert "missing grade" in captured.err
    assert f"(5 skipped; listed in {out / 'manifest.json'})" in captured.out
