"""Handing the memory a large request freed back to the system.

glibc keeps freed heap memory for reuse by the process: after a 4000 x 4000 photograph the
server stayed ~90 MiB larger, after 64 MB JSON bodies beside small requests ~200 MiB.
``malloc_trim`` releases the free pages (a few ms); other C libraries have no such call, and
there nothing is done. Owns no policy beyond the 64 MiB of growth that is worth a trim.
"""

import contextlib
import ctypes
import os
from collections.abc import Iterator

_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; None elsewhere
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
GROWTH_RETURNED_BYTES = 64 * 2**20


def resident_bytes() -> int:
    """This process's resident memory (Linux's /proc)."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * _PAGE_BYTES


def return_free_memory() -> None:
    """Release the free pages of every malloc arena to the system."""
    _MALLOC_TRIM(0)


@contextlib.contextmanager
def returned_after(large: bool = False) -> Iterator[None]:
    """When the block ends, hand the process's free memory back if the block was ``large``
    (what it freed may already be below the growth mark) or grew the process by over
    `GROWTH_RETURNED_BYTES`."""
    if _MALLOC_TRIM is None:
        yield
        return
    before = resident_bytes()
    try:
        yield
    finally:
        if large or resident_bytes() - before > GROWTH_RETURNED_BYTES:
            return_free_memory()
