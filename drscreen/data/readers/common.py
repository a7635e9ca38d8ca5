"""Helpers shared by the dataset readers: problem reporting, layout checks, CSV rows, grades.

Owns nothing dataset-specific: each reader module names its own files and columns.
"""

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from drscreen.data.lesions import NUM_GRADES
from drscreen.data.records import FundusRecord


class Problem(NamedTuple):
    """A listed image that could not become a record.

    Attributes
    ----------
    source:
        The offending file, or ``"<csv path>:<line>"`` for a row of a label file.
    reason:
        Why the row or file was skipped.
    """

    source: str
    reason: str


class DatasetProblemsError(ValueError):
    """Raised by `read_dataset` when rows were skipped and the caller did not collect them."""

    def __init__(self, dataset: str, problems: Sequence[Problem], shown: int = 10):
        self.problems = list(problems)
        lines = [f"  {source}: {reason}" for source, reason in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        super().__init__(
            f"{dataset}: {len(self.problems)} listed image(s) skipped; pass problems=[] to "
            "read_dataset to skip them and collect the reasons:\n" + "\n".join(lines)
        )


def require(path: Path, dataset: str, layout: str) -> Path:
    """Return ``path``, or raise FileNotFoundError naming it and the dataset's layout."""
    if not path.exists():
        raise FileNotFoundError(
            f"{dataset}: expected {path} but it does not exist.\nExpected layout:\n{layout}"
        )
    return path


class CsvRow(NamedTuple):
    """One data row of a label file: ``source`` is ``"<path>:<line>"`` for problem reports."""

    source: str
    values: dict[str, str]


def read_csv_rows(path: Path, columns: Iterable[str], delimiter: str = ",") -> list[CsvRow]:
    """Read a label file whose header names at least ``columns``.

    Header names and values are stripped of surrounding spaces (IDRiD's header has a trailing
    space), a UTF-8 byte-order mark is ignored and blank rows are skipped.

    Raises
    ------
    ValueError
        Naming the file: it is not UTF-8 text, it is empty, its header lacks one of
        ``columns`` (saying so when it looks separated by another character), or it is not
        a readable CSV file.
    """
    columns = tuple(columns)
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=delimiter)
            header = [name.strip() for name in next(reader, [])]
            _check_header(path, header, columns, delimiter)
            rows = []
            for line, cells in enumerate(reader, start=2):
                if not any(cell.strip() for cell in cells):
                    continue
                values = dict(zip(header, (cell.strip() for cell in cells), strict=False))
                rows.append(CsvRow(f"{path}:{line}", values))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save the label file as UTF-8"
        ) from None
    except csv.Error as error:
        raise ValueError(f"{path}: not a readable CSV file ({error})") from None
    return rows


_OTHER_DELIMITERS = (",", ";", "\t", "|")


def _check_header(path: Path, header: list[str], columns: tuple[str, ...], delimiter: str):
    """Raise ValueError naming ``path`` unless ``header`` holds every one of ``columns``."""
    if not any(header):
        raise ValueError(
            f"{path}: empty file; expected a header row with {delimiter.join(columns)}"
        )
    missing = [name for name in columns if name not in header]
    if not missing:
        return
    hint = ""
    separators = [d for d in _OTHER_DELIMITERS if d != delimiter and d in header[0]]
    if len(header) == 1 and separators:
        hint = f" (its header is separated by {separators[0]!r}, expected {delimiter!r})"
    raise ValueError(f"{path}: header {header} lacks column(s) {missing}{hint}")


_GRADE_TEXT = re.compile(r"-?[0-9]+(?:\.0+)?")
"""A grade as label files write it: ASCII digits, optionally ``.0``."""


def parse_grade(text: str | None) -> int:
    """Parse an ICDR grade 0-4 written as ``"3"`` or ``"3.0"`` (ASCII digits).

    Raises
    ------
    ValueError
        With the reason (missing, not a number, not an integer, out of range). A value that
        only rounds to an integer (``"2.9999999999999999"``) and digits of other scripts
        (``"٣"``) are refused: what the file says must be what is read.
    """
    if text is None or not text.strip():
        raise ValueError("missing grade")
    stripped = text.strip()
    if not stripped.isascii():
        raise ValueError(f"grade {text!r} is not written with the digits 0-9")
    try:
        value = float(stripped)
    except ValueError:
        raise ValueError(f"grade {text!r} is not a number") from None
    if not _GRADE_TEXT.fullmatch(stripped):
        raise ValueError(f"grade {text!r} is not an integer")
    if not 0 <= value < NUM_GRADES:
        raise ValueError(f"grade {text!r} is not an ICDR grade 0-{NUM_GRADES - 1}")
    return int(value)


def parse_gradable(text: str | None) -> bool | None:
    """Parse a gradability label: ``"1"`` (gradable), ``"0"`` (ungradable); None when the
    column is absent or the cell empty.

    Raises
    ------
    ValueError
        For any other value.
    """
    if text is None or not text.strip():
        return None
    if text.strip() not in ("0", "1"):
        raise ValueError(f"gradable {text!r} is not 1 (gradable) or 0 (ungradable)")
    return text.strip() == "1"


def natural_key(text: str) -> tuple[str | int, ...]:
    """Sort key ordering embedded numbers by value: ``"2_left"`` before ``"10_left"``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def sort_records(records: Iterable[FundusRecord]) -> list[FundusRecord]:
    """Records in the package's deterministic order: natural order of ``image_id``."""
    return sorted(records, key=lambda record: (natural_key(record.image_id), record.image_id))
