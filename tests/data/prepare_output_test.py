"""`drscreen prepare`'s output folder is one run's complete output or the previous one: re-runs
replace it whole, a crash, a kill or a full disk leave the previous one, other files are
refused; a run with nothing to write fails."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drscreen import cli
from drscreen.data import prepare as prepare_module
from drscreen.data import tfrecords
from drscreen.data.prepare import Manifest, PrepareConfig, PrepareError, prepare_dataset
from drscreen.data.splits import SPLITS, Splits
from drscreen.data.staging import OutOfSpaceError
from tests.data.prepare_test import GOOD, _kaggle_folder

ROOT = Path(__file__).resolve().parents[2]


def _config(data: str, out: str, **overrides) -> PrepareConfig:
    values = dict(dataset="kaggle", data_dir=data, out_dir=out, image_size=16, shard_size=3)
    return PrepareConfig(**{**values, **overrides, "num_workers": 1})


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _ids_in_shards(folder: Path) -> dict[str, list[str]]:
    """Image ids of each split as the shard files hold them."""
    found = {}
    for split in SPLITS:
        ids = []
        for path in tfrecords.list_shards(str(folder), split):
            for serialized in tfrecords.tf.data.TFRecordDataset(path):
                ids.append(tfrecords.parse_features(serialized)["image_id"].numpy().decode())
        found[split] = sorted(ids)
    return found


@pytest.fixture
def first_run(tmp_path):
    """A prepare output (seed 0, 3 per shard) over the Kaggle folder of prepare_test."""
    data = _kaggle_folder(tmp_path / "kaggle")
    out = tmp_path / "out"
    prepare_dataset(_config(data, str(out)))
    return data, out


def test_a_rerun_replaces_the_folder_whole(first_run):
    """Another seed and shard size: the folder holds exactly the new run's shards, each split's
    ids those of its splits.json, nothing of the first run and no staging folder."""
    data, out = first_run
    manifest = prepare_dataset(_config(data, str(out), seed=1, shard_size=4))
    shards = sorted(name for split in manifest.splits.values() for name in split["shards"])
    assert sorted(p.name for p in out.glob("*.tfrecord")) == shards
    splits = Splits.load(out)
    assert splits.seed == 1
    assert _ids_in_shards(out) == {name: sorted(splits.ids(name)) for name in SPLITS}
    assert sum(len(ids) for ids in _ids_in_shards(out).values()) == len(GOOD)
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_a_crash_mid_rewrite_leaves_the_previous_output(first_run, monkeypatch):
    """The second shard of a re-run fails: every file of the first run is as it was."""
    data, out = first_run
    before = _contents(out)
    written, write_shard = [], tfrecords.write_shard

    def failing(path, examples):
        if written:
            raise RuntimeError("crash in the middle")
        written.append(path)
        return write_shard(path, examples)

    monkeypatch.setattr(prepare_module.tfrecords, "write_shard", failing)
    with pytest.raises(RuntimeError, match="crash in the middle"):
        prepare_dataset(_config(data, str(out), seed=1))
    assert written and _contents(out) == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_a_full_disk_says_how_much_space_was_needed(first_run, monkeypatch, capsys):
    """The disk fills up during the second shard: the command stops with the space written
    and an estimate of the space needed, and the previous output is unchanged."""
    data, out = first_run
    before = _contents(out)
    shards, write_shard = [], tfrecords.write_shard

    def full_disk(path, examples):
        shards.append(path)
        if len(shards) == 2:
            with open(f"{path}.tmp", "wb") as file:
                file.write(b"x" * 500_000)
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write_shard(path, examples)

    monkeypatch.setattr(prepare_module.tfrecords, "write_shard", full_disk)
    with pytest.raises(OutOfSpaceError) as error:
        prepare_dataset(_config(data, str(out), seed=1))
    message = str(error.value)
    assert message.startswith(f"no space left on device writing {out}: ")
    assert "MB written, about" in message and "MB needed in all" in message
    assert "previous output is unchanged" in message
    assert error.value.needed > 500_000  # 3 images of 10 done, 500 kB written
    assert _contents(out) == before
    assert len(shards) == 2  # stopped at once: no shard started after the failure
    shards.clear()
    argv = ["drscreen", "prepare", "--dataset=kaggle", f"--data={data}", f"--out={out}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--size=16", "--shard_size=3", "--workers=1", "--seed=2"])
    assert str(exit_info.value.code).startswith("drscreen prepare: no space left on device")


def test_a_folder_holding_other_files_is_refused_untouched(tmp_path):
    """An output folder with files prepare did not write is refused by name, not emptied."""
    data = _kaggle_folder(tmp_path / "kaggle")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"mine holds files this command did not write \(notes"):
        prepare_dataset(_config(data, str(out)))
    assert _contents(out) == {"notes.txt": b"keep me"}


def test_nothing_to_write_is_an_error(tmp_path):
    """A header-only label file, or photographs that are all refused, exit non-zero saying
    why, and leave no output folder."""
    root = tmp_path / "kaggle"
    (root / "train").mkdir(parents=True)
    (root / "trainLabels.csv").write_text("image,level\n")
    argv = ["drscreen", "prepare", "--dataset=kaggle", f"--data={root}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, f"--out={tmp_path / 'out'}", "--size=16"])
    assert str(exit_info.value.code) == (
        f"drscreen prepare: {root}: the kaggle reader found no image to write"
    )
    (root / "train" / "1_left.jpeg").write_bytes(b"not a photograph")
    (root / "trainLabels.csv").write_text("image,level\n1_left,0\n")
    with pytest.raises(PrepareError, match="none of the 1 photographs could be used, e.g."):
        prepare_dataset(_config(str(root), str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "labels, message",
    [
        ("image;level\n1_left;0\n", "separated by ';'"),
        ("image\n1_left\n", "lacks column(s) ['level']"),
        ("", "empty file"),
        ("image,level\n\xe9_left,0\n".encode("latin-1"), "not UTF-8 text"),
    ],
)
def test_label_file_problems_are_messages_not_tracebacks(tmp_path, labels, message):
    """prepare names the label file and what is wrong with it."""
    root = tmp_path / "kaggle"
    (root / "train").mkdir(parents=True)
    path = root / "trainLabels.csv"
    path.write_bytes(labels if isinstance(labels, bytes) else labels.encode())
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "prepare", "--dataset=kaggle", f"--data={root}",
                  f"--out={tmp_path / 'out'}"])  # fmt: skip
    assert str(exit_info.value.code).startswith(f"drscreen prepare: {path}: ")
    assert message in str(exit_info.value.code)


@pytest.mark.slow
def test_kill_9_mid_rewrite_leaves_the_previous_output(tmp_path):
    """`drscreen prepare` killed with SIGKILL while re-writing a folder: the folder is the
    previous complete output, byte for byte; the next run removes the killed run's staging
    folder and replaces the output."""
    data = _kaggle_folder(tmp_path / "kaggle")
    out = tmp_path / "out"
    prepare_dataset(_config(data, str(out)))
    before = _contents(out)
    command = [sys.executable, "-c", "from drscreen.cli import main; main()", "prepare",
               "--dataset=kaggle", f"--data={data}", f"--out={out}", "--size=16",
               "--shard_size=1", "--workers=1", "--seed=1"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    staged = []
    while not staged and process.poll() is None and time.monotonic() < deadline:
        staged = [p for p in tmp_path.glob(".out.partial-*") if list(p.glob("*.tfrecord"))]
        time.sleep(0.01)
    assert process.poll() is None, "prepare ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _contents(out) == before
    assert Manifest.load(str(out)).config["seed"] == 0
    prepare_dataset(_config(data, str(out), seed=1))
    assert Splits.load(out).seed == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
