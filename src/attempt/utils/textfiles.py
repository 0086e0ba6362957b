"""Reading row files as text: JSON lines, CSV and TSV, each row with the file line it starts on.

Line numbers count from 1, as editors (and Excel's row numbers, the header being row 1) show them, so an error
can say where to look. Files are UTF-8; a leading byte-order mark (what Excel writes for "CSV UTF-8") is
dropped, and bytes that are not UTF-8 are an error naming the line, not a `UnicodeDecodeError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from attempt.utils.reading import NESTED_TOO_DEEP, nesting_problem

ROW_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json")  # what `numbered_rows` reads: the one list
ROW_FILE_KINDS = "CSV, TSV with a header row, or one JSON object a line"


class DataError(ValueError):
    """Bad data: a missing field, a label outside the label set, an empty split."""


def decoded(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file, without a leading byte-order mark.

    Raises:
        DataError: bytes that are not UTF-8, naming the line and the byte.
    """
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x} at byte {error.start - line_start + 1} "
            "of the line). Save the file as UTF-8 (Excel: 'CSV UTF-8'; an editor: 'Save with encoding UTF-8')."
        ) from None


def numbered_jsonl(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines file.

    Raises:
        DataError: a line that is not a JSON object, or not UTF-8 (the message names file and line).
    """
    rows = []
    for line_number, line in enumerate(decoded(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = nesting_problem(row)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {line_number}: not valid JSON ({error}).") from error
        except RecursionError:  # the parser's own stack overflowed
            problem = NESTED_TOO_DEEP
        if problem:
            raise DataError(f"{path}, line {line_number}: {problem}; a row is one JSON object of fields.")
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}.")
        rows.append((line_number, row))
    return rows


def numbered_table(path: str | os.PathLike, delimiter: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each record of a CSV/TSV file with a header line; blank lines are
    skipped, and a record with quoted newlines is numbered by the line it starts on.

    Raises:
        DataError: a record with more or fewer values than the header has columns (csv.DictReader would put
            the extra values under a None key and fill the missing ones with None), or bytes that are not UTF-8.
    """
    reader = csv.reader(io.StringIO(decoded(path), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    ended = 0  # the line the previous record ended on
    for values in reader:
        start, ended = ended + 1, reader.line_num
        if not values:
            continue
        if header is None:
            header, header_line = values, start
            continue
        if len(values) != len(header):
            shown = "a tab" if delimiter == "\t" else repr(delimiter)
            raise DataError(
                f"{path}, line {start}: {len(values)} values but the header (line {header_line}) has {len(header)} "
                f'columns. Quote values that contain {shown} ("a, b"), or fix the header.'
            )
        rows.append((start, dict(zip(header, values, strict=True))))
    return rows


def numbered_rows(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a CSV (``.csv``), TSV (``.tsv``/``.txt``) or JSON-lines (``.jsonl``/``.json``) file, by suffix.

    Raises:
        DataError: a suffix outside `ROW_FILE_SUFFIXES`, or what the format's reader raises.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in ROW_FILE_SUFFIXES:
        raise DataError(f"{path}: a row file must end in {', '.join(ROW_FILE_SUFFIXES)} ({ROW_FILE_KINDS}).")
    if suffix in (".jsonl", ".json"):
        return numbered_jsonl(path)
    return numbered_table(path, "," if suffix == ".csv" else "\t")  # type: ignore[return-value]
