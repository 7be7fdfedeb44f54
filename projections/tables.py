"""Writing rows to DuckDB in bulk, through Arrow.

DuckDB's ``executemany`` manages about a thousand rows a second; an Arrow table
registered as a view and inserted with one ``INSERT … SELECT`` moves hundreds of
thousands. Values travel as plain Python values (UUIDs, decimals and times as
strings) and are cast by DuckDB in the ``SELECT``.

A few rows (a live batch) go as the parameters of one ``INSERT … VALUES`` instead:
registering an Arrow table costs a millisecond or two a statement, which is most of
what a small batch costs. But DuckDB binds a statement's parameters slowly (2.0.1,
a 13-column table: 8 rows either way take 2.8 ms; 37 rows 7.7 ms as parameters against
3.2 ms through Arrow; 64 rows 12.9 against 3.3), so only up to ``SMALL_INSERT``
values go as parameters. The values are checked as Arrow would check them.
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
#: The Python values each Arrow type takes (besides None), for rows sent as parameters.
_PYTHON_TYPES: dict[pa.DataType, tuple[type, ...]] = {
    pa.int64(): (int,),
    pa.int32(): (int,),
    pa.bool_(): (bool,),
    pa.float64(): (float, int),
    pa.string(): (str,),
}
#: Up to this many single-column keys, a DELETE binds them as parameters (an IN list
#: of 64 keys costs about what the Arrow key set costs).
SMALL_BATCH = 64
#: Up to this many values (rows x columns), an INSERT binds them as parameters.
SMALL_INSERT = 100


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
    def parameter(self) -> str:
        """The SQL expression for this column's value bound as a parameter."""
        if self.arrow_type == pa.string() and self.sql_type != "VARCHAR":
            return f"CAST(? AS {self.sql_type})"
        return "?"

    def check(self, value: Any) -> None:
        """Refuse what Arrow would refuse for this column (a row sent as parameters)."""
        if value is None:
            return
        allowed = _PYTHON_TYPES[self.arrow_type]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise TypeError(f"{self.name} ({self.sql_type}) takes {allowed}, not {value!r}")

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
        if len(rows) * len(self.columns) <= SMALL_INSERT:
            self._insert_values(con, rows)
            return
        selects = ", ".join(c.value("_rows") for c in self.columns)
        con.register("_rows", self._arrow(rows))
        try:
            con.execute(f"INSERT INTO {self.name} SELECT {selects} FROM _rows")
        finally:
            con.unregister("_rows")

    def _insert_values(
        self, con: duckdb.DuckDBPyConnection, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        parameters: list[Any] = []
        for row in rows:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.name} has {len(self.columns)} columns, not {len(row)}")
            for column, value in zip(self.columns, row, strict=True):
                column.check(value)
            parameters.extend(row)
        one = "(" + ", ".join(c.parameter for c in self.columns) + ")"
        con.execute(f"INSERT INTO {self.name} VALUES {', '.join([one] * len(rows))}", parameters)

    def _delete_keys(self, con: duckdb.DuckDBPyConnection, keys: Sequence[Any]) -> None:
        by_name = {c.name: c for c in self.columns}
        key_columns = [by_name[name] for name in self.key]  # in the order of the key tuples
        if len(key_columns) == 1 and len(keys) <= SMALL_BATCH:
            (column,) = key_columns
            for key in keys:
                column.check(key)
            listed = ", ".join([column.parameter] * len(keys))
            con.execute(f'DELETE FROM {self.name} WHERE "{column.name}" IN ({listed})', list(keys))
            return
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
        # ``key IN (SELECT …)``, not a correlated ``EXISTS``: DuckDB plans the first as a
        # semi join that hashes the few keys and probes them while scanning; the second
        # it decorrelates into a plan that groups the whole table, every batch (1.6M
        # rows: ~2-20 ms against ~150-400 ms a DELETE; the live lag is made of these).
        columns = ", ".join(f'"{c.name}"' for c in key_columns)
        selects = ", ".join(c.value("_keys") for c in key_columns)
        con.register("_keys", keyset)
        try:
            con.execute(
                f"DELETE FROM {self.name} WHERE ({columns}) IN (SELECT {selects} FROM _keys)"
            )
        finally:
            con.unregister("_keys")


def rows_of(
    con: duckdb.DuckDBPyConnection, sql: str, params: Iterable[Any] = ()
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
