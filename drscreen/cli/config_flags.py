"""absl flags generated from a frozen config dataclass, and the config built back from them.

Every field of the dataclass (and of the dataclasses nested in it, e.g. `TrainConfig.data`)
becomes one flag of the same name: its help text is the field's ``metadata["help"]``, its
default the field's default, and ``metadata["choices"]`` makes it an enum flag. A field without
a default is a required flag. A new config field therefore needs one edit, in the dataclass.

Types: ``bool``, ``int``, ``float``, ``str`` and ``tuple[int, ...]`` (a comma-separated list).
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


def _is_int_tuple(kind: type) -> bool:
    return typing.get_origin(kind) is tuple and typing.get_args(kind) == (int, Ellipsis)


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
        elif _is_int_tuple(kind):
            arguments["default"] = [str(value) for value in default or ()]
            flags.DEFINE_list(flag_values=flag_values, **arguments)
        else:
            raise TypeError(f"{config_class.__name__}.{field.name}: no flag type for {kind}")
        if required:
            flags.mark_flag_as_required(field.name, flag_values)


def _value(field: dataclasses.Field, kind: type, flag_values: flags.FlagValues):
    value = flag_values[field.name].value
    if not _is_int_tuple(kind):
        return value
    try:
        return tuple(int(item) for item in value)
    except ValueError:
        raise ValueError(f"--{field.name}={','.join(value)}: expected integers") from None


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
