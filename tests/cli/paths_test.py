"""`--out` naming an existing file is refused when flags are parsed, saying what is wrong."""

import pytest

from drscreen import cli

ARGUMENTS = {
    "evaluate": ["--model=m.keras", "--data=d"],
    "export": ["--model=m.keras"],
    "predict": ["--model=m.keras", "--images=i"],
    "prepare": ["--dataset=kaggle", "--data=d"],
    "synth": [],
}


@pytest.mark.parametrize("under", [False, True], ids=["file", "path under a file"])
@pytest.mark.parametrize("command", sorted(ARGUMENTS))
def test_out_naming_a_file_is_refused(tmp_path, capsys, command, under):
    """The message names the flag and the file; the file is left as it was."""
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    out = existing / "sub" if under else existing
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", command, *ARGUMENTS[command], f"--out={out}"])
    assert exit_info.value.code not in (0, None)
    error = capsys.readouterr().err
    assert f"{existing} is a file; --out names an output folder" in error
    assert "--version" not in error
    assert existing.read_text() == "keep me"
