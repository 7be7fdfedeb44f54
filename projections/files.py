"""Where read models live on disk: one DuckDB file per read model, swapped atomically.

Each read model has generations: ``read/<name>-<generation>.duckdb``. The file
``read/<name>.current`` names the generation in use; a rebuild writes a new
generation beside it and replaces the pointer with ``os.replace`` (atomic), so a
reader sees either the old read model or the new one, never a half-built one. A
process that holds a read model open (``crm serve``) notices the new pointer and
switches between two batches.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SUFFIX = ".duckdb"


class ReadFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pointer(self, name: str) -> Path:
        return self.directory / f"{name}.current"

    def current(self, name: str) -> Path:
        """The file of the generation in use; a first generation when there is none."""
        pointer = self.pointer(name)
        try:
            generation = pointer.read_text().strip()
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{name}-1{SUFFIX}"
            self._write_pointer(name, path)
            return path
        return self.directory / generation

    def stamp(self, name: str) -> int:
        """Changes when the pointer is replaced (its modification time, in ns)."""
        try:
            return self.pointer(name).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def new_generation(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}-{time.time_ns()}{SUFFIX}"
        discard(path)
        return path

    def swap(self, name: str, path: Path) -> Path | None:
        """Make ``path`` the generation in use; returns the one it replaces."""
        old = self.current(name) if self.pointer(name).exists() else None
        self._write_pointer(name, path)
        return old if old != path else None

    def _write_pointer(self, name: str, path: Path) -> None:
        temporary = self.pointer(name).with_suffix(".current.tmp")
        temporary.write_text(path.name + "\n")
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, self.pointer(name))


def discard(path: Path) -> None:
    """Remove a DuckDB file and its write-ahead log, if they exist."""
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def sql_string(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
