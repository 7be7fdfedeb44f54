"""Rows reach DuckDB the same whichever way a batch takes: a few rows bound as the
parameters of one statement, many through an Arrow table."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import duckdb
import pytest

from projections.tables import SMALL_BATCH, SMALL_INSERT, Column, Table

COLUMNS = [
    Column("id", "UUID", False),
    Column("kind", "VARCHAR", False),
    Column("n", "BIGINT"),
    Column("at", "TIMESTAMPTZ"),
    Column("amount", "DECIMAL(20,4)"),
    Column("doc", "JSON"),
    Column("flag", "BOOLEAN"),
    Column("share", "DOUBLE"),
]


def new_table(con: duckdb.DuckDBPyConnection, name: str, key: list[str]) -> Table:
    table = Table(name, COLUMNS, key=key)
    for statement in table.ddl():
        con.execute(statement)
    return table


def rows(count: int) -> list[tuple[Any, ...]]:
    return [
        (
            str(uuid4()),
            "deal" if i % 2 else "contact",
            i,
            f"2024-05-01T12:{i % 60:02d}:00+02:00",
            f"{i}.25",
            f'{{"i": {i}}}',
            i % 3 == 0,
            i / 4 if i % 5 else None,
        )
        for i in range(count)
    ]


def content(con: duckdb.DuckDBPyConnection, table: Table) -> list[tuple[Any, ...]]:
    return con.execute(f"SELECT * FROM {table.name} ORDER BY n").fetchall()


@pytest.mark.parametrize("key", [["id"], ["kind", "id", "n"]])
def test_small_and_large_batches_write_and_delete_the_same_rows(key: list[str]) -> None:
    con = duckdb.connect()
    small, large = new_table(con, "small", key), new_table(con, "large", key)
    data = rows(3 * SMALL_BATCH)

    def key_of(row: tuple[Any, ...]) -> Any:
        values = tuple(row[[c.name for c in COLUMNS].index(k)] for k in key)
        return values[0] if len(values) == 1 else values

    for row in data:  # one row a batch
        small.upsert(key_of(row), row)
        small.flush(con)
    for row in data:
        large.upsert(key_of(row), row)
    large.flush(con)
    assert content(con, small) == content(con, large)
    assert len(content(con, small)) == len(data)

    changed = [(*row[:2], row[2], *row[3:6], not row[6], row[7]) for row in data[::2]]
    for row in changed[:5]:
        small.upsert(key_of(row), row)
    small.flush(con)
    for row in changed[5:]:
        small.upsert(key_of(row), row)
    small.flush(con)
    for row in changed:
        large.upsert(key_of(row), row)
    large.flush(con)
    for row in data[1::2][:3]:
        small.delete(key_of(row))
        large.delete(key_of(row))
    small.flush(con)
    large.flush(con)
    for row in data[1::2][3:]:
        large.delete(key_of(row))
    large.flush(con)
    for row in data[1::2][3:]:
        small.delete(key_of(row))
        small.flush(con)
    assert content(con, small) == content(con, large)
    assert len(content(con, small)) == len(changed)


#: The most rows of COLUMNS an INSERT binds as parameters; one more goes through Arrow.
MOST_BOUND = SMALL_INSERT // len(COLUMNS)


@pytest.mark.parametrize("count", [1, MOST_BOUND, MOST_BOUND + 1, SMALL_BATCH + 1])
@pytest.mark.parametrize(
    ("position", "wrong"),
    [(2, "7"), (2, True), (6, 1), (1, 5), (3, object())],
    ids=["str-for-bigint", "bool-for-bigint", "int-for-boolean", "int-for-varchar", "object"],
)
def test_a_value_of_the_wrong_type_is_refused_in_any_batch(
    count: int, position: int, wrong: Any
) -> None:
    con = duckdb.connect()
    table = new_table(con, "t", ["id"])
    batch = rows(count)
    batch[0] = (*batch[0][:position], wrong, *batch[0][position + 1 :])
    for row in batch:
        table.append(row)
    with pytest.raises((TypeError, ValueError)):  # Arrow's own errors are of these kinds
        table.flush(con)


def test_a_row_of_the_wrong_width_is_refused() -> None:
    con = duckdb.connect()
    table = new_table(con, "t", ["id"])
    table.append(rows(1)[0][:-1])
    with pytest.raises(ValueError, match="columns"):
        table.flush(con)
