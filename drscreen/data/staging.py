"""Output folders written whole: built beside their destination, then swapped in.

A command's output folder is either one run's complete output or absent, never a mix of two
runs nor a run cut short. `staged_folder` hands the command a hidden staging folder next to
the destination (same file system, so the swap is a rename); when the command finishes, the
previous output (a folder of the same kind, recognised by its ``marker`` file) is moved
aside, the staging folder renamed into place and the previous output deleted. A command that
fails leaves the previous output untouched and its staging folder removed; one killed
outright leaves a hidden ``.NAME.partial-*`` folder, which the next run into the same folder
removes. A folder holding anything else is refused by name, never emptied.

A full disk is reported as `OutOfSpaceError`: how much was written, about how much the whole
output needed, and how much was free, with nothing kept. `write_atomically` gives one file
the same guarantee.
"""

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

_PARTIAL = ".partial-"
_OLD = ".old-"
_FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_DISK_TEXT = "No space left on device"
_NEARLY_FULL = 1 << 20
"""Free bytes below which a write error without an error number is taken for a full disk
(OpenCV's ``imwrite`` only returns False)."""


class OutOfSpaceError(OSError):
    """The disk filled up while an output was written; nothing of it was kept."""

    def __init__(
        self,
        destination: str,
        written: int,
        needed: int | None,
        free: int,
        kept: str | None = None,
    ):
        estimate = f", about {_megabytes(needed)} needed in all" if needed else ""
        if kept is None:
            kept = "nothing was kept" + (
                " and the previous output is unchanged" if os.path.isdir(destination) else ""
            )
        super().__init__(
            errno.ENOSPC,
            f"no space left on device writing {destination}: {_megabytes(written)} written"
            f"{estimate}, {_megabytes(free)} free when it started; {kept}",
        )
        self.destination = destination
        self.needed = needed

    def __str__(self) -> str:
        return self.strerror


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def folder_bytes(folder: str) -> int:
    """Bytes in the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def is_out_of_space(error: BaseException, folder: str) -> bool:
    """Whether ``error`` (an OSError or TensorFlow's ResourceExhaustedError) came from a full
    disk under ``folder``."""
    if getattr(error, "errno", None) in _FULL_DISK_ERRNOS or _FULL_DISK_TEXT in str(error):
        return True
    if isinstance(error, OSError) and error.errno is None:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < _NEARLY_FULL
    return False


def check_replaceable(out_dir: str, marker: str) -> None:
    """Raise ValueError unless ``out_dir`` is absent, empty, or an output holding ``marker``.

    Raises
    ------
    ValueError
        Naming the folder and some of what it holds, or the file in the way.
    """
    if not os.path.lexists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir} is a file; an output folder is needed")
    entries = sorted(os.listdir(out_dir))
    if entries and marker not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(
            f"{out_dir} holds files this command did not write ({shown}); choose a new or "
            "empty folder (an earlier output of the same command is replaced whole)"
        )


def _remove_leftovers(parent: str, name: str) -> None:
    """Staging and moved-aside folders of ``name`` left by runs that were killed."""
    for entry in os.listdir(parent):
        if entry.startswith(f".{name}{_PARTIAL}") or entry.startswith(f".{name}{_OLD}"):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _readable_by_others(folder: str) -> None:
    """mkdtemp makes a private folder; an output gets the permissions of a new folder."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)


def _swap(staging: str, out_dir: str) -> None:
    """Put ``staging`` at ``out_dir``, the previous output moved aside first, then deleted."""
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
        return
    parent, name = os.path.split(out_dir)
    old = tempfile.mkdtemp(prefix=f".{name}{_OLD}", dir=parent)
    os.rename(out_dir, os.path.join(old, name))
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(
    out_dir: str, marker: str, space_needed: Callable[[int], int | None] | None = None
) -> Iterator[str]:
    """A staging folder that becomes ``out_dir`` when the block finishes without error.

    Parameters
    ----------
    out_dir:
        The output folder: absent, empty, or an earlier output holding ``marker``.
    marker:
        The file every output of this kind holds (e.g. ``manifest.json``).
    space_needed:
        Given the bytes written when the disk filled up, about how many the whole output
        needs (for the message); None leaves the estimate out.

    Yields
    ------
    The staging folder to write into.

    Raises
    ------
    ValueError
        When ``out_dir`` holds something else (`check_replaceable`), before anything is written.
    OutOfSpaceError
        When the disk fills up; the staging folder is removed.
    """
    out_dir = os.path.abspath(out_dir)
    check_replaceable(out_dir, marker)
    parent, name = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    _remove_leftovers(parent, name)
    free = shutil.disk_usage(parent).free
    staging = tempfile.mkdtemp(prefix=f".{name}{_PARTIAL}", dir=parent)
    try:
        yield staging
        _readable_by_others(staging)
        _swap(staging, out_dir)
    except BaseException as error:
        full = is_out_of_space(error, parent)
        written = folder_bytes(staging) if full else 0
        shutil.rmtree(staging, ignore_errors=True)
        if full:
            needed = space_needed(written) if space_needed else None
            raise OutOfSpaceError(out_dir, written, needed, free) from error
        raise


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it, so a reader sees
    the old content or the new one, never a part (a full disk raises `OutOfSpaceError`)."""
    path = os.fspath(path)
    partial = f"{path}{_PARTIAL}{os.getpid()}"
    try:
        with open(partial, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(partial)
        if is_out_of_space(error, os.path.dirname(os.path.abspath(path))):
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
            raise OutOfSpaceError(path, 0, len(text.encode()), free) from error
        raise
