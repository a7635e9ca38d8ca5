"""`drscreen export` on a disk that fills up: a message, and nothing left under --out."""

import errno
import os

import pytest

from drscreen import cli
from drscreen.export import exporter
from drscreen.models import build


@pytest.mark.slow
def test_a_full_disk_is_a_message_and_leaves_nothing(tmp_path, monkeypatch):
    build("small", input_size=64, width=4).save(str(tmp_path / "model.keras"))

    def full_disk(version_dir, description):
        with open(os.path.join(version_dir, "drscreen_export.json"), "w") as file:
            file.write("{")
        raise OSError(errno.ENOSPC, "No space left on device", version_dir)

    monkeypatch.setattr(exporter.saved_model, "write_description", full_disk)
    out = tmp_path / "export"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", f"--model={tmp_path / 'model.keras'}", f"--out={out}",
                  "--format=saved_model"])  # fmt: skip
    message = str(exit_info.value.code)
    assert message.startswith(f"drscreen export: no space left on device writing {out / '1'}: ")
    assert "nothing was kept" in message
    assert os.listdir(out) == []
