"""Read-only access to the read models for analysts: ``crm sql`` and ``crm export``.

Each read model's DuckDB file is attached read-only to an in-memory session, and
every table gets a view under its own name (``audit_log``, ``board_deals`` …), so
queries join across read models freely. ``projection_positions`` is the union of
every read model's position.

DuckDB lets no other process open a file that a writer holds, not even read-only.
While ``crm serve`` (or ``crm project``) holds the read models, this asks that process
for a snapshot (a file ``snapshot.request`` in the read directory, answered between
two batches) and reads the snapshot instead: a consistent copy as of the last
committed batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import duckdb

from projections.files import ReadFiles, sql_string
from projections.host import SNAPSHOT_DIR, SNAPSHOT_REQUEST

#: Statements an analyst may run: reads only.
READ_ONLY = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class AnalystError(Exception):
    """A one-line reason why a query or an export cannot run."""


def _attach(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    con.execute(f'ATTACH {sql_string(path)} AS "{name}" (READ_ONLY)')


def _is_lock_error(error: duckdb.Error) -> bool:
    return "lock" in str(error).lower()


def request_snapshot(directory: Path, timeout: float) -> Path:
    """Ask the process holding the read models for a snapshot; its directory."""
    request = directory / SNAPSHOT_REQUEST
    request.touch()
    deadline = time.monotonic() + timeout
    while request.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            raise AnalystError(
                "the read models are held by another process that did not answer the "
                f"snapshot request within {timeout:.0f} s (is its projection runner stopped?)"
            )
        time.sleep(0.05)
    return directory / SNAPSHOT_DIR


def open_read_models(
    directory: Path, names: Sequence[str], snapshot_timeout: float = 60.0
) -> tuple[duckdb.DuckDBPyConnection, str]:
    """An in-memory DuckDB session with ``names`` attached read-only, and where from."""
    files = ReadFiles(directory)
    missing = [n for n in names if not files.pointer(n).exists()]
    if missing:
        raise AnalystError(
            f"no read model {', '.join(missing)} in {directory} yet: run `crm project --once` "
            "or `crm serve` first"
        )
    con = duckdb.connect()
    source = "live files"
    try:
        try:
            for name in names:
                _attach(con, name, files.current(name))
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise
            con.close()
            con = duckdb.connect()
            snapshots = request_snapshot(directory, snapshot_timeout)
            source = "a snapshot of the running process's last committed batch"
            for name in names:
                _attach(con, name, snapshots / f"{name}.duckdb")
        _create_views(con, names)
    except BaseException:
        con.close()
        raise
    return con, source


def _create_views(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> None:
    positions: list[str] = []
    for name in names:
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
            [name],
        ).fetchall()
        for (table,) in tables:
            if table == "projection_positions":
                positions.append(f'SELECT * FROM "{name}".main.projection_positions')
                continue
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "{name}".main."{table}"')
    if positions:
        con.execute("CREATE VIEW projection_positions AS " + " UNION ALL ".join(positions))


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise AnalystError(one_line(error)) from None
    if not statements:
        raise AnalystError("no SQL statement given")
    for statement in statements:
        if statement.type not in READ_ONLY:
            raise AnalystError(
                f"only SELECT (and EXPLAIN) may run here, not {statement.type.name}: "
                "the read models are derived from the event store and change only through it"
            )


def tables_of(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [
        table
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
            "AND table_name <> 'projection_positions' ORDER BY table_name",
            [name],
        ).fetchall()
    ]


def export(
    con: duckdb.DuckDBPyConnection, name: str, output: Path, file_format: str
) -> list[tuple[str, Path, int]]:
    """Every table of read model ``name`` to ``output/<table>.<format>``; rows per file."""
    if file_format not in ("csv", "parquet"):
        raise AnalystError(f"format must be csv or parquet, not {file_format}")
    output.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Path, int]] = []
    options = "(FORMAT csv, HEADER true)" if file_format == "csv" else "(FORMAT parquet)"
    for table in tables_of(con, name):
        path = output / f"{table}.{file_format}"
        temporary = path.with_name(path.name + ".tmp")
        con.execute(f'COPY "{name}".main."{table}" TO {sql_string(temporary)} {options}')
        temporary.replace(path)
        (rows,) = con.execute(f'SELECT count(*) FROM "{name}".main."{table}"').fetchone() or (0,)
        written.append((table, path, int(rows)))
    return written


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
