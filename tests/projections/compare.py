"""Comparing read models row by row: built incrementally against rebuilt from zero.

A read store's content is every row of every table in its DuckDB database — the
tables its projectors declare, any other they made, and ``projection_positions``.
Rows are compared as multisets, sorted by their ``repr`` so that any column type
orders. Several stores (one file per read model, as ``ReadModels`` keeps them) are
compared as one: their tables merged, their position rows together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

from projections.projector import Projector
from projections.runner import Runner
from projections.store import ReadStore

Row = tuple[Any, ...]
POSITIONS = "projection_positions"
#: How many differing rows of a table a failure message shows.
SHOWN = 8


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


Content = dict[str, Rows]


def content(stores: Sequence[ReadStore]) -> Content:
    """Every table of the stores' databases with all its rows, in a fixed order."""
    tables: Content = {}
    for store in stores:
        con = store.reader()
        try:
            positions = dict(
                con.execute(f"SELECT projection, position FROM {POSITIONS}").fetchall()
            )
            assert positions == store.positions(), (
                f"positions in memory {store.positions()} != in the table {positions}"
            )
            names = [
                name
                for (name,) in con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'main' ORDER BY table_name"
                ).fetchall()
            ]
            for name in names:
                cursor = con.execute(f'SELECT * FROM "{name}"')
                rows = Rows(tuple(d[0] for d in cursor.description or []), tuple(cursor.fetchall()))
                if name == POSITIONS and name in tables:
                    rows = Rows(rows.columns, tables[name].rows + rows.rows)
                else:
                    assert name not in tables, f"two stores hold a table {name}"
                tables[name] = Rows(rows.columns, tuple(sorted(rows.rows, key=repr)))
        finally:
            con.close()
    return tables


def owners(factories: Mapping[str, Callable[[], Projector]]) -> dict[str, str]:
    """The projector that declares each table, by table name."""
    found = {POSITIONS: "runner"}
    for name, make in factories.items():
        for table in make().tables:
            found[table.name] = name
    return found


def differences(incremental: Content, rebuilt: Content, owner: Mapping[str, str]) -> list[str]:
    """What differs, in words, table by table; empty when the two are the same."""
    problems: list[str] = []
    for table in sorted(set(incremental) | set(rebuilt)):
        label = f"{owner.get(table, '?')}: {table}"
        mine, theirs = incremental.get(table), rebuilt.get(table)
        if mine is None or theirs is None:
            where = "the rebuild" if mine is None else "the incremental build"
            problems.append(f"{label} exists only in {where}")
            continue
        if mine.columns != theirs.columns:
            problems.append(f"{label} columns {mine.columns} != {theirs.columns}")
            continue
        if mine.rows == theirs.rows:
            continue
        extra = Counter(mine.rows) - Counter(theirs.rows)
        missing = Counter(theirs.rows) - Counter(mine.rows)
        lines = [
            f"{label}: {len(mine.rows)} rows built incrementally, {len(theirs.rows)} rebuilt; "
            f"columns {mine.columns}"
        ]
        for side, rows in (("only incremental", extra), ("only rebuilt", missing)):
            listed = sorted(rows.elements(), key=repr)
            lines += [f"  {side}: {row!r}" for row in listed[:SHOWN]]
            if len(listed) > SHOWN:
                lines.append(f"  … and {len(listed) - SHOWN} more {side}")
        problems.append("\n".join(lines))
    return problems


def rebuild(
    recorder: ApplicationRecorder,
    factories: Mapping[str, Callable[[], Projector]],
    stop: int | None = None,
) -> Content:
    """Every read model rebuilt from position 0 into a fresh in-memory store, in one
    batch, up to ``stop`` (default: the head)."""
    store = ReadStore(None, [make() for make in factories.values()])
    try:
        Runner(recorder, [store], batch_size=1_000_000_000).catch_up(stop=stop)
        return content([store])
    finally:
        store.close()


def assert_same_as_rebuilt(
    recorder: ApplicationRecorder,
    factories: Mapping[str, Callable[[], Projector]],
    stores: Sequence[ReadStore],
) -> None:
    """The stores' read models equal the same read models rebuilt from zero up to the
    position the stores have reached."""
    positions = {store.position(p.name) for store in stores for p in store.projectors}
    assert len(positions) == 1, f"the read models stand at different positions: {positions}"
    built = content(stores)
    rebuilt = rebuild(recorder, factories, stop=positions.pop())
    problems = differences(built, rebuilt, owners(factories))
    assert not problems, "incremental != rebuilt from zero:\n" + "\n".join(problems)
