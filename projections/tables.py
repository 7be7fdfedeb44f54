"""Writing rows to DuckDB in bulk, through Arrow.

DuckDB's ``executemany`` manages about a thousand rows a second; an Arrow table
registered as a view and inserted with one ``INSERT … SELECT`` moves hundreds of
thousands. Values travel as plain Python values (UUIDs, decimals and times as
strings) and are cast by DuckDB in the ``SELECT``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    nullable: bool = True

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES.get(self.sql_type, pa.string())

    def value(self, source: str) -> str:
        """The SQL expression for this column's value in relation ``source``."""
        ref = f'{source}."{self.name}"'
        if self.arrow_type == pa.string() and self.sql_type != "VARCHAR":
            return f"CAST({ref} AS {self.sql_type})"
        return ref

    @property
    def ddl(self) -> str:
        return f'"{self.name}" {self.sql_type}{"" if self.nullable else " NOT NULL"}'


@dataclass
class Table:
    """A read-model table: its DDL, and the rows waiting to be written in this batch."""

    name: str
    columns: Sequence[Column]
    key: Sequence[str] = ()
    indexes: Sequence[str] = ()
    pending: dict[Any, tuple[Any, ...]] = field(default_factory=dict, repr=False)
    appended: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    deleted: set[Any] = field(default_factory=set, repr=False)

    def ddl(self) -> list[str]:
        cols = [c.ddl for c in self.columns]
        if self.key:
            cols.append(f"PRIMARY KEY ({', '.join(self.key)})")
        statements = [f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"]
        for column in self.indexes:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_{column}_idx ON {self.name} ({column})"
            )
        return statements

    def append(self, row: tuple[Any, ...]) -> None:
        """Add a row to an append-only table."""
        self.appended.append(row)

    def upsert(self, key: Any, row: tuple[Any, ...]) -> None:
        """Set the row with this key (the last write in a batch wins)."""
        self.deleted.discard(key)
        self.pending[key] = row

    def delete(self, key: Any) -> None:
        self.pending.pop(key, None)
        self.deleted.add(key)

    def flush(self, con: duckdb.DuckDBPyConnection) -> None:
        keys = list(self.deleted) + list(self.pending)
        if keys:
            self._delete_keys(con, keys)
        rows = self.appended + list(self.pending.values())
        if rows:
            self._insert(con, rows)
        self.appended = []
        self.pending = {}
        self.deleted = set()

    def discard(self) -> None:
        self.appended, self.pending, self.deleted = [], {}, set()

    def _arrow(self, rows: Sequence[tuple[Any, ...]]) -> pa.Table:
        columns = list(zip(*rows, strict=True))
        return pa.table(
            {
                c.name: pa.array(values, type=c.arrow_type)
                for c, values in zip(self.columns, columns, strict=True)
            }
        )

    def _insert(self, con: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]]) -> None:
        selects = ", ".join(c.value("_rows") for c in self.columns)
        con.register("_rows", self._arrow(rows))
        try:
            con.execute(f"INSERT INTO {self.name} SELECT {selects} FROM _rows")
        finally:
            con.unregister("_rows")

    def _delete_keys(self, con: duckdb.DuckDBPyConnection, keys: Sequence[Any]) -> None:
        key_columns = [c for c in self.columns if c.name in self.key]
        # One key column: the keys themselves; several: one list per column.
        values = (
            [list(keys)] if len(key_columns) == 1 else [list(v) for v in zip(*keys, strict=True)]
        )
        keyset = pa.table(
            {
                c.name: pa.array(v, type=c.arrow_type)
                for c, v in zip(key_columns, values, strict=True)
            }
        )
        match = " AND ".join(f'{self.name}."{c.name}" = {c.value("_keys")}' for c in key_columns)
        con.register("_keys", keyset)
        try:
            con.execute(f"DELETE FROM {self.name} WHERE EXISTS (SELECT 1 FROM _keys WHERE {match})")
        finally:
            con.unregister("_keys")


def rows_of(
    con: duckdb.DuckDBPyConnection, sql: str, params: Iterable[Any] = ()
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
