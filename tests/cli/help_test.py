"""`drscreen <command> --help`: the command's own flags, each with its help text."""

import importlib
import re

import pytest
from absl import flags

from drscreen import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
@pytest.mark.parametrize("help_flag", ["--help", "-h"])
def test_help_lists_every_flag_of_the_command_with_its_help(command, help_flag, capsys):
    """Each flag the command's module defines appears as ``--name: <help text>``, and the
    usage (its docstring) comes first; the exit status is 0."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", command, help_flag])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    module = importlib.import_module(f"drscreen.cli.{command}")
    own = flags.FLAGS.get_flags_for_module(module.__name__)
    assert own, f"drscreen {command} defines no flag"
    joined = " ".join(shown.split())  # absl wraps long help texts
    for flag in own:
        assert f"--{flag.name}: " in shown or f"--[no]{flag.name}: " in shown, flag.name
        text = re.sub(r"^<[^>]*>: ", "", flag.help)  # an enum's choices wrap anywhere
        assert " ".join(text.split()) in joined, flag.name
    assert shown.startswith(module.__doc__.strip().splitlines()[0])


def test_help_does_not_run_the_command(tmp_path, capsys):
    """--help among other flags shows help and writes nothing."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "synth", f"--out={tmp_path / 'data'}", "--help"])
    assert exit_info.value.code == 0
    assert "--n: " in capsys.readouterr().out
    assert not (tmp_path / "data").exists()
