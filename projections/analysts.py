"""Read-only access to the read models for analysts: ``crm sql`` and ``crm export``.

Each read model's DuckDB file is attached read-only to an in-memory session, and
every table gets a view under its own name (``audit_log``, ``board_deals`` …), so
queries join across read models freely. ``projection_positions`` is the union of
every read model's position.

DuckDB lets no other process open a file that a writer holds, not even read-only.
While ``crm serve`` (or ``crm project``) holds the read models, this asks that process
for a snapshot (a file ``snapshot-<id>.request`` in the read directory, answered between
two batches) and reads the snapshot instead: a consistent copy that holds every event
committed before the request. The snapshot is removed when the session ends.

A session for ad-hoc SQL is locked down (:func:`lock_down`): besides refusing every
statement but SELECT, it cannot touch the file system (no ``COPY … TO``, no ``ATTACH``).

A session *as a user* (``crm sql --as``, ``crm export --as``) holds only the rows that
user may read (:func:`projections.scope.row_filter`): each table is copied, filtered,
into the in-memory session and the read models' files are detached again, so no query
reaches a row outside the user's scope. Without a user, the session is the operator's,
who reads everything.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from domain.roles import Authority
from projections.files import ReadFiles, sql_string
from projections.host import SNAPSHOT_PREFIX, SNAPSHOT_REQUEST_SUFFIX
from projections.scope import row_filter

#: Statements an analyst may run: reads only (EXPLAIN only of a read, see ``check_read_only``).
READ_ONLY = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

#: ``EXPLAIN``, ``EXPLAIN ANALYZE`` or ``EXPLAIN (options)`` before the explained statement.
EXPLAIN = re.compile(r"\s*explain\s+(?:analy[sz]e\b|\([^)]*\))?", re.IGNORECASE)


class AnalystError(Exception):
    """A one-line reason why a query or an export cannot run."""


def _attach(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    con.execute(f'ATTACH {sql_string(path)} AS "{name}" (READ_ONLY)')


def _is_lock_error(error: duckdb.Error) -> bool:
    return "lock" in str(error).lower()


def request_snapshot(directory: Path, names: Sequence[str], timeout: float) -> Path:
    """Ask the process holding the read models for a snapshot of ``names``; its directory.

    The caller removes the directory when done with it.
    """
    snapshot = directory / f"{SNAPSHOT_PREFIX}{uuid.uuid4().hex}"
    request = snapshot.with_name(snapshot.name + SNAPSHOT_REQUEST_SUFFIX)
    pending = request.with_name(request.name + ".tmp")
    pending.write_text("".join(f"{name}\n" for name in names))
    pending.replace(request)  # whole, never half-written, when the holder sees it
    deadline = time.monotonic() + timeout
    while request.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            shutil.rmtree(snapshot, ignore_errors=True)
            raise AnalystError(
                "the read models are held by another process that did not answer the "
                f"snapshot request within {timeout:.0f} s (is its projection runner stopped?)"
            )
        time.sleep(0.05)
    missing = [n for n in names if not (snapshot / f"{n}.duckdb").exists()]
    if missing:
        shutil.rmtree(snapshot, ignore_errors=True)
        raise AnalystError(
            f"the process holding the read models has no read model {', '.join(missing)} "
            "(restart it to run the new read models)"
        )
    return snapshot


@contextmanager
def read_models(
    directory: Path,
    names: Sequence[str],
    snapshot_timeout: float = 60.0,
    reader: Authority | None = None,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """An in-memory DuckDB session with ``names`` attached read-only, and where from;
    with a ``reader``, only the rows they may read (the files detached)."""
    files = ReadFiles(directory)
    missing = [n for n in names if not files.pointer(n).exists()]
    if missing:
        raise AnalystError(
            f"no read model {', '.join(missing)} in {directory} yet: run `crm project --once` "
            "or `crm serve` first"
        )
    con = duckdb.connect()
    source = "live files"
    snapshot: Path | None = None
    try:
        try:
            for name in names:
                _attach(con, name, files.current(name))
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise
            con.close()
            con = duckdb.connect()
            snapshot = request_snapshot(directory, names, snapshot_timeout)
            source = "a snapshot of the running process's read models"
            for name in names:
                _attach(con, name, snapshot / f"{name}.duckdb")
        if reader is None or reader.is_system:
            _create_views(con, names)
        else:
            _copy_in_scope(con, names, reader)
        yield con, source
    except duckdb.Error as error:
        raise AnalystError(one_line(error)) from None
    finally:
        con.close()
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No file system access (and no way to turn it back on) for what runs next."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


#: Tables every read model's file has, read as one view over all of them:
#: ``kafka_offsets`` (a Kafka-fed read model's offsets) gains a ``read_model`` column.
BOOKKEEPING = {
    "projection_positions": "SELECT * FROM {source}",
    "kafka_offsets": "SELECT '{name}' AS read_model, * FROM {source}",
}


def _create_views(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> None:
    unions: dict[str, list[str]] = {}
    for name in names:
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
            [name],
        ).fetchall()
        for (table,) in tables:
            source = f'"{name}".main."{table}"'
            if table in BOOKKEEPING:
                select = BOOKKEEPING[table].format(name=name, source=source)
                unions.setdefault(table, []).append(select)
                continue
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}')
    for table, selects in unions.items():
        con.execute(f'CREATE VIEW "{table}" AS ' + " UNION ALL ".join(selects))


def _copy_in_scope(con: duckdb.DuckDBPyConnection, names: Sequence[str], reader: Authority) -> None:
    """Each table of ``names`` as an in-memory table of the rows ``reader`` may read
    (marked with its read model, see :func:`tables_of`); the files detached after."""
    unions: dict[str, list[str]] = {}
    for name in names:
        for table in _tables_in(con, name):
            source = f'"{name}".main."{table}"'
            if table in BOOKKEEPING:
                unions.setdefault(table, []).append(
                    BOOKKEEPING[table].format(name=name, source=source)
                )
                continue
            scope = row_filter(table, reader)
            where, params = scope if scope is not None else ("TRUE", [])
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM {source} WHERE {where}', params)
            literal = name.replace("'", "''")
            con.execute(f"COMMENT ON TABLE \"{table}\" IS '{literal}'")
    # Bookkeeping is every reader's (see ``projections.scope.UNSCOPED``).
    for table, selects in unions.items():
        con.execute(f'CREATE TABLE "{table}" AS ' + " UNION ALL ".join(selects))
    for name in names:
        con.execute(f'DETACH "{name}"')


def restrict(con: duckdb.DuckDBPyConnection, reader: Authority) -> None:
    """Delete from a throw-away database (a read model built as of a moment) every row
    ``reader`` may not read."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
    ).fetchall()
    for (table,) in tables:
        scope = row_filter(table, reader)
        if scope is not None:
            con.execute(f'DELETE FROM "{table}" WHERE ({scope[0]}) IS NOT TRUE', scope[1])


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise AnalystError(one_line(error)) from None
    if not statements:
        raise AnalystError("no SQL statement given")
    for statement in statements:
        if statement.type not in READ_ONLY or (
            statement.type == duckdb.StatementType.EXPLAIN and not _explains_a_read(con, statement)
        ):
            raise AnalystError(
                f"only SELECT (and EXPLAIN of a SELECT) may run here, not {statement.type.name}: "
                "the read models are derived from the event store and change only through it"
            )


def _explains_a_read(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> bool:
    """Whether an EXPLAIN explains a SELECT: EXPLAIN ANALYZE runs what it explains."""
    match = EXPLAIN.match(statement.query)
    if match is None:
        return False
    try:
        explained = con.extract_statements(statement.query[match.end() :])
    except duckdb.Error:
        return False
    return len(explained) == 1 and explained[0].type == duckdb.StatementType.SELECT


def _tables_in(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [
        table
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
            [name],
        ).fetchall()
    ]


def tables_of(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    """The tables of read model ``name`` in the session: attached, or copied in scope."""
    copied = [
        table
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND comment = ? ORDER BY table_name",
            [name],
        ).fetchall()
    ]
    return copied or [t for t in _tables_in(con, name) if t not in BOOKKEEPING]


def export(
    con: duckdb.DuckDBPyConnection, name: str, output: Path, file_format: str
) -> list[tuple[str, Path, int]]:
    """Every table of read model ``name`` to ``output/<table>.<format>``; rows per file."""
    if file_format not in ("csv", "parquet"):
        raise AnalystError(f"format must be csv or parquet, not {file_format}")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnalystError(f"cannot write to {output}: {one_line(error)}") from None
    written: list[tuple[str, Path, int]] = []
    options = "(FORMAT csv, HEADER true)" if file_format == "csv" else "(FORMAT parquet)"
    for table in tables_of(con, name):
        path = output / f"{table}.{file_format}"
        temporary = path.with_name(path.name + ".tmp")
        con.execute(f'COPY main."{table}" TO {sql_string(temporary)} {options}')
        temporary.replace(path)
        (rows,) = con.execute(f'SELECT count(*) FROM main."{table}"').fetchone() or (0,)
        written.append((table, path, int(rows)))
    return written


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
