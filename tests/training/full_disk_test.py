"""Training on a disk that fills up: a message with the space needed, the last complete
checkpoint kept, and the same command resuming once there is space."""

import errno
import json

import pytest

from drscreen.data.staging import OutOfSpaceError
from drscreen.training import callbacks
from drscreen.training.run import run
from tests.training.resume_test import _config


@pytest.mark.slow
def test_a_full_disk_stops_training_and_the_run_resumes(tmp_path, monkeypatch):
    save = callbacks.BestModelCheckpoint.on_epoch_end
    epochs = []

    def fill_the_disk_at_epoch_2(self, epoch, logs=None):
        epochs.append(epoch)
        if epoch == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return save(self, epoch, logs)

    monkeypatch.setattr(callbacks.BestModelCheckpoint, "on_epoch_end", fill_the_disk_at_epoch_2)
    config = _config(tmp_path / "run", tmp_path / "data")
    with pytest.raises(OutOfSpaceError) as error:
        run(config)
    message = str(error.value)
    assert message.startswith(f"no space left on device writing {tmp_path / 'run'}: ")
    assert "MB needed in all" in message and "the last complete checkpoint is kept" in message
    assert error.value.needed > 0
    metadata = tmp_path / "run" / "stages" / "0-64px" / "backup" / "training_metadata.json"
    assert json.loads(metadata.read_text())["epoch"] == 2  # the backup runs before best.keras
    assert not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.setattr(callbacks.BestModelCheckpoint, "on_epoch_end", save)
    metrics = run(config)
    assert (tmp_path / "run" / "metrics.json").is_file() and metrics["run"]["epochs_per_stage"] == 3
