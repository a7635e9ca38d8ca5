"""A version the exporter writes is readable by a serving account other than the exporter."""

import os
import stat

import pytest

from drscreen.export import ExportConfig, export
from drscreen.models import build


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_version_directories_and_files_follow_the_umask(tmp_path, umask_022):
    """With umask 022 every directory of the version is 0755 and every file 0644 (the version
    directory itself used to be 0700, unreadable to TF Serving running as another user)."""
    result = export(
        build("small", input_size=64, width=4),
        str(tmp_path),
        ExportConfig(formats=("saved_model",)),
    )
    modes = {}
    for root, directories, files in os.walk(result.path):
        for name in [root, *(os.path.join(root, d) for d in directories)]:
            modes[os.path.relpath(name, result.path)] = stat.S_IMODE(os.stat(name).st_mode)
        for name in files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, result.path)] = stat.S_IMODE(os.stat(path).st_mode)
    assert modes["."] == 0o755 and modes["saved_model.pb"] == 0o644
    wrong = {name: oct(mode) for name, mode in modes.items() if mode not in (0o755, 0o644)}
    assert not wrong
