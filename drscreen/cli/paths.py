"""Checks of path flags, made when flags are parsed, before a command writes anything."""

import os

from absl import flags


def _file_in_the_way(path: str) -> str | None:
    """The existing file at ``path`` or at one of its parents, None when there is none."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return None if os.path.isdir(current) else current


def require_output_folder(holder: flags.FlagHolder) -> None:
    """Refuse an output-folder flag that names an existing file (or a path under one)."""

    def check(path: str | None) -> bool:
        if not path:
            return True
        blocking = _file_in_the_way(path)
        if blocking is not None:
            raise flags.ValidationError(
                f"{blocking} is a file; --{holder.name} names an output folder (created when "
                "missing, or an existing folder)"
            )
        return True

    flags.register_validator(holder.name, check)
