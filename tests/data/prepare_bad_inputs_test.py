"""`drscreen prepare` over the bad-input matrix: accepted cases written, the others listed."""

import os

import pytest

from drscreen.data import pipeline
from drscreen.data.prepare import PrepareConfig, PrepareError, prepare_dataset
from drscreen.data.sources import PreparedSplit
from tests import bad_inputs


def _image_id(index: int, name: str) -> str:
    return "œil gauche é_left" if name == "unicode and space name" else f"{index}_left"


def test_prepare_gives_each_case_its_outcome(tmp_path):
    """A Kaggle-layout folder of the matrix: accepted cases land in the shards (unicode id
    included), each rejected one is in the manifest with its reason; nothing stops the run."""
    cases = bad_inputs.cases()
    train = tmp_path / "kaggle" / "train"
    train.mkdir(parents=True)
    ids = {name: _image_id(index, name) for index, name in enumerate(cases)}
    for name, case in cases.items():
        (train / f"{ids[name]}.jpeg").write_bytes(case.data)
    rows = ["image,level", *(f"{ids[name]},{index % 5}" for index, name in enumerate(cases))]
    (tmp_path / "kaggle" / "trainLabels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    config = PrepareConfig("kaggle", str(tmp_path / "kaggle"), out, image_size=32, shard_size=4)
    manifest = prepare_dataset(config)

    skipped = {os.path.basename(s["path"]): s["reason"] for s in manifest.skipped}
    for name, case in cases.items():
        if case.reason is not None:
            assert case.reason in skipped.pop(f"{ids[name]}.jpeg"), name
    assert skipped == {}
    written = set()
    for split in ("train", "validation", "test"):
        batches = pipeline.dataset_for_evaluation(
            PreparedSplit(out, split), pipeline.PipelineConfig(image_size=32, batch_size=8)
        )
        written |= {i.decode() for batch in batches for i in batch["image_id"].numpy()}
    assert written == {ids[name] for name in bad_inputs.accepted()}


def test_pixel_limit_flag_is_honoured(tmp_path):
    """max_image_pixels below a photograph's size skips it, naming the limit (here the only
    photograph, so the run fails, writing nothing)."""
    train = tmp_path / "kaggle" / "train"
    train.mkdir(parents=True)
    (train / "1_left.jpeg").write_bytes(bad_inputs.cases()["JPEG"].data)
    (tmp_path / "kaggle" / "trainLabels.csv").write_text("image,level\n1_left,0\n")
    config = PrepareConfig(
        "kaggle", str(tmp_path / "kaggle"), str(tmp_path / "out"), image_size=32,
        max_image_pixels=10_000,
    )  # fmt: skip
    with pytest.raises(PrepareError, match="1_left.jpeg: .* above the limit of 10000"):
        prepare_dataset(config)
    assert not (tmp_path / "out").exists()
