"""absl flags generated from a frozen config dataclass, and the config built back from them.

Every field of the dataclass (and of the dataclasses nested in it, e.g. `TrainConfig.data`)
becomes one flag of the same name: its help text is the field's ``metadata["help"]``, its
default the field's default, and ``metadata["choices"]`` makes it an enum flag. A field without
a default is a required flag. A new config field therefore needs one edit, in the dataclass.

Types: ``bool``, ``int``, ``float``, ``str`` and ``tuple[int | float | str, ...]`` (a
comma-separated list).
"""

import dataclasses
import typing
from collections.abc import Iterator

from absl import flags


def _leaf_fields(config_class: type) -> Iterator[tuple[dataclasses.Field, type]]:
    """(field, type) of every non-dataclass field, nested dataclasses flattened in order."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            yield from _leaf_fields(kind)
        else:
            yield field, kind


_TUPLE_ITEMS = {int: "integers", float: "numbers", str: "strings"}


def _tuple_item(kind: type) -> type | None:
    """The item type of a ``tuple[item, ...]`` field that flags can hold, else None."""
    if typing.get_origin(kind) is not tuple:
        return None
    item, *rest = typing.get_args(kind)
    return item if rest == [Ellipsis] and item in _TUPLE_ITEMS else None


def define_config_flags(config_class: type, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Define one flag per field of `config_class` (see the module docstring).

    Raises
    ------
    TypeError
        For a field without ``metadata["help"]`` or of a type flags cannot hold.
    """
    for field, kind in _leaf_fields(config_class):
        if "help" not in field.metadata:
            raise TypeError(f"{config_class.__name__}.{field.name} has no metadata['help']")
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        arguments = dict(name=field.name, default=default, help=field.metadata["help"])
        choices = field.metadata.get("choices")
        if choices is not None:
            flags.DEFINE_enum(enum_values=list(choices), flag_values=flag_values, **arguments)
        elif kind is bool:
            flags.DEFINE_boolean(flag_values=flag_values, **arguments)
        elif kind is int:
            flags.DEFINE_integer(flag_values=flag_values, **arguments)
        elif kind is float:
            flags.DEFINE_float(flag_values=flag_values, **arguments)
        elif kind is str:
            flags.DEFINE_string(flag_values=flag_values, **arguments)
        elif _tuple_item(kind) is not None:
            arguments["default"] = [str(value) for value in default or ()]
            flags.DEFINE_list(flag_values=flag_values, **arguments)
        else:
            raise TypeError(f"{config_class.__name__}.{field.name}: no flag type for {kind}")
        if required:
            flags.mark_flag_as_required(field.name, flag_values)


def _value(field: dataclasses.Field, kind: type, flag_values: flags.FlagValues):
    value = flag_values[field.name].value
    item = _tuple_item(kind)
    if item is None:
        return value
    try:
        return tuple(item(entry) for entry in value)
    except ValueError:
        raise ValueError(
            f"--{field.name}={','.join(value)}: expected {_TUPLE_ITEMS[item]}"
        ) from None


def config_from_flags(config_class: type, flag_values: flags.FlagValues = flags.FLAGS):
    """The `config_class` instance of the parsed flags (its validation raises ValueError)."""
    hints = typing.get_type_hints(config_class)
    values = {}
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            values[field.name] = config_from_flags(kind, flag_values)
        else:
            values[field.name] = _value(field, kind, flag_values)
    return config_class(**values)


def config_from_flagfile(config_class: type, path: str, *overrides: str):
    """The `config_class` instance of one flagfile (plus ``overrides``, e.g. ``--x=1``), parsed
    with flags of its own, so several recipes can be read in one process.

    Raises
    ------
    ValueError
        Naming the flagfile: it is missing, holds an unknown or bad flag, or its config is invalid.
    """
    values = flags.FlagValues()
    define_config_flags(config_class, values)
    try:
        values([path, f"--flagfile={path}", *overrides])
        return config_from_flags(config_class, values)
    except (flags.Error, ValueError) as error:
        raise ValueError(f"flagfile {path}: {error}") from None
