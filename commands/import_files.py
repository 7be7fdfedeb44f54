"""Import files: CSV (a header row, then one row per record; the header is line 1) and
JSON Lines (one JSON object per line; blank lines are skipped)."""

from __future__ import annotations

import csv
import hashlib
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from commands.importing import SourceRow, batch_id_of

#: A CSV field may be as long as a note's text (``csv`` stops at 128 KiB by default).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


SUFFIXES = {".csv": FileFormat.csv, ".jsonl": FileFormat.jsonl, ".ndjson": FileFormat.jsonl}


class ImportFileError(Exception):
    """Raised when an import file cannot be read at all (as opposed to a bad row)."""


def format_of(path: Path, given: FileFormat | None) -> FileFormat:
    if given is not None:
        return given
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ImportFileError(f"{path}: cannot tell its format from its name; give --format")
    return found


def file_batch_id(path: Path, file_format: FileFormat, kind: str | None) -> tuple[str, int]:
    """The batch id of an import of ``path`` (from its content, format and kind) and
    the number of lines it has (for a progress bar), in one pass."""
    digest = hashlib.sha256()
    lines = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror or error}") from None
    batch = batch_id_of(digest.digest(), file_format.value.encode(), (kind or "").encode())
    return batch, lines


def check_file(path: Path, file_format: FileFormat) -> None:
    """Read the whole file as :func:`read_rows` will, before anything is written: a file
    that is not UTF-8, or not CSV (a quote left open swallows every later line), is
    refused whole with :class:`ImportFileError` instead of failing after some batches
    are in. Rows are not validated here: a bad row is reported on its own later."""
    for _ in read_rows(path, file_format):
        pass


def read_rows(path: Path, file_format: FileFormat) -> Iterator[SourceRow]:
    """The rows of an import file, with their line numbers; a line that cannot be a row
    (not a JSON object, too many values) comes with its error. Quotes are read strictly:
    ``"a"b`` or a quote never closed is not CSV (the file is refused, naming the line)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            if file_format is FileFormat.csv:
                yield from _csv_rows(file)
            else:
                yield from _jsonl_rows(file)
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path} is not UTF-8 text: {error.reason}") from None
    except csv.Error as error:
        raise ImportFileError(f"{path} is not CSV: {error}") from None


def _csv_rows(file: Any) -> Iterator[SourceRow]:
    reader = csv.reader(file, strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [name.strip() for name in header]
        start = reader.line_num + 1
        for values in reader:
            if any(v.strip() for v in values):
                if len(values) > len(names):
                    yield SourceRow(start, {}, f"{len(values)} values for {len(names)} columns")
                else:
                    yield SourceRow(start, dict(zip(names, values, strict=False)))
            start = reader.line_num + 1
    except csv.Error as error:
        raise csv.Error(f"the row from line {start}: {error}") from None


def _jsonl_rows(file: Any) -> Iterator[SourceRow]:
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield SourceRow(number, {}, f"not JSON: {error}")
            continue
        if not isinstance(value, dict):
            yield SourceRow(number, {}, "a line of JSON Lines is a JSON object")
            continue
        yield SourceRow(number, value)
