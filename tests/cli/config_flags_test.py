"""Flags generated from config dataclasses: one flag per field, and the config built back."""

import dataclasses

import pytest
from absl import flags

from drscreen.cli.config_flags import config_from_flagfile, config_from_flags, define_config_flags


@dataclasses.dataclass(frozen=True)
class _Inner:
    rate: float = dataclasses.field(default=0.5, metadata={"help": "A rate."})
    sizes: tuple[int, ...] = dataclasses.field(default=(), metadata={"help": "Sizes."})
    sigmas: tuple[float, ...] = dataclasses.field(default=(0.5,), metadata={"help": "Sigmas."})
    names: tuple[str, ...] = dataclasses.field(default=("a",), metadata={"help": "Names."})


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str = dataclasses.field(metadata={"help": "A required name."})
    inner: _Inner = _Inner()
    mode: str = dataclasses.field(default="a", metadata={"help": "Mode.", "choices": ("a", "b")})
    count: int = dataclasses.field(default=3, metadata={"help": "Count."})
    on: bool = dataclasses.field(default=True, metadata={"help": "Switch."})

    def __post_init__(self):
        if self.count < 0:
            raise ValueError(f"--count={self.count} must be >= 0")


def _parse(*argv: str) -> flags.FlagValues:
    values = flags.FlagValues()
    define_config_flags(_Outer, values)
    values(["prog", *argv])
    return values


def test_every_field_is_a_flag_with_its_help_and_default():
    """Nested fields are flattened; help, default and enum choices come from the field."""
    values = _parse("--name=x")
    assert set(values) == {"name", "rate", "sizes", "sigmas", "names", "mode", "count", "on"}
    assert values["rate"].help == "A rate." and values["rate"].default == 0.5
    assert values["mode"].parser.enum_values == ["a", "b"]
    assert config_from_flags(_Outer, values) == _Outer(name="x")


def test_values_are_converted_back_into_the_config():
    """Given flags, lists of integers included, land in their (nested) field."""
    values = _parse("--name=y", "--sizes=112,224", "--sigmas=0,1.5", "--names=p,q", "--noon")
    assert config_from_flags(_Outer, values) == _Outer(
        name="y", inner=_Inner(sizes=(112, 224), sigmas=(0.0, 1.5), names=("p", "q")), on=False
    )


def test_bad_values_are_named():
    """A required flag, an enum choice, a non-integer list and the config's own check."""
    with pytest.raises(flags.IllegalFlagValueError, match="name"):
        _parse()
    with pytest.raises(flags.IllegalFlagValueError, match="should be one of <a|b>"):
        _parse("--name=x", "--mode=c")
    with pytest.raises(ValueError, match="--sizes=1,x: expected integers"):
        config_from_flags(_Outer, _parse("--name=x", "--sizes=1,x"))
    with pytest.raises(ValueError, match="--sigmas=1,x: expected numbers"):
        config_from_flags(_Outer, _parse("--name=x", "--sigmas=1,x"))
    with pytest.raises(ValueError, match="--count=-1 must be >= 0"):
        config_from_flags(_Outer, _parse("--name=x", "--count=-1"))


def test_a_field_without_help_is_refused():
    """A field must document its flag."""

    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        size: int = 3

    with pytest.raises(TypeError, match="Undocumented.size has no metadata"):
        define_config_flags(Undocumented, flags.FlagValues())


def test_a_flagfile_parses_with_flags_of_its_own(tmp_path):
    """Two flagfiles read in one process do not see each other's values; errors name the file."""
    first, second = tmp_path / "first.flags", tmp_path / "second.flags"
    first.write_text("--name=one\n--count=5\n")
    second.write_text("--name=two\n")
    assert config_from_flagfile(_Outer, str(first)) == _Outer(name="one", count=5)
    assert config_from_flagfile(_Outer, str(second), "--noon") == _Outer(name="two", on=False)
    (tmp_path / "bad.flags").write_text("--name=x\n--nosuch=1\n")
    with pytest.raises(ValueError, match=r"flagfile .*bad.flags: .*nosuch"):
        config_from_flagfile(_Outer, str(tmp_path / "bad.flags"))
    with pytest.raises(ValueError, match=r"flagfile .*missing.flags"):
        config_from_flagfile(_Outer, str(tmp_path / "missing.flags"))
    (tmp_path / "negative.flags").write_text("--name=x\n--count=-2\n")
    with pytest.raises(ValueError, match=r"negative.flags: --count=-2 must be >= 0"):
        config_from_flagfile(_Outer, str(tmp_path / "negative.flags"))
