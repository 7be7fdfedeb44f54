"""Building read models in bulk: the stored events loaded into DuckDB once, and each
read model derived from them in SQL.

A rebuild through the projectors' handlers costs Python work per event and per read
model; this path costs one read of the store and set-based SQL. Both paths must give
the same tables, row for row (``tests/projections/test_bulk.py``): after a bulk build
the runner goes on from its position with the handlers, which load their memory from
those tables.

A projector that can build in bulk overrides :meth:`Projector.build_in_bulk`; it finds
the events as the relation ``events``, one row per stored event up to the build's
position, with these columns:

============== ========= ===========================================================
position       BIGINT    the global position (notification id)
aggregate_id   VARCHAR   the record's id, canonical (``8-4-4-4-12``), as in ``Recorded``
version        BIGINT    the record's version
name           VARCHAR   ``Deal.Opened`` (the topic after ``:``), as in ``Recorded``
recorded_at    VARCHAR   the ISO timestamp as stored, as in ``Recorded``
actor          VARCHAR   as in ``Recorded`` (user ids canonical, ``system`` as is)
request_id     VARCHAR   as in ``Recorded``
source         VARCHAR   as in ``Recorded``
state          VARCHAR   the stored JSON, untouched: transcoded values are still
                         wrapped (``{"_type_": "uuid_hex", "_data_": "<32 hex>"}``,
                         ``datetime_iso``, ``decimal_str``, ``enum:…``), and it still
                         holds ``timestamp``, ``originator_topic`` and ``_meta``
============== ========= ===========================================================

The macros of :data:`MACROS` unwrap values in SQL (``plain(state, 'amount')``,
``uuid_at(state, 'deal_id')``).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier, Literal

from domain.privacy import StateOpener, may_carry_personal
from projections.events import REMOVED
from projections.projector import Projector
from projections.store import ReadStore, transaction

#: How many stored events one read of the store fetches.
PAGE = 50_000

#: Called with (events read so far, events to read).
Progress = Callable[[int, int], None]

#: SQL macros for reading the stored JSON; created on every connection that builds.
MACROS = (
    # 32 hex digits (a transcoded UUID) -> the canonical form, as ``Recorded`` has them.
    # One cast, so that the argument (often a JSON extraction) is evaluated once.
    "CREATE OR REPLACE TEMP MACRO canonical_uuid(h) AS CAST(CAST(h AS UUID) AS VARCHAR)",
    # A field's value as text with its transcoding wrapper removed (NULL for JSON null).
    "CREATE OR REPLACE TEMP MACRO plain(j, field) AS "
    "coalesce(json_extract_string(j, '$.\"' || field || '\"._data_'), "
    "json_extract_string(j, '$.\"' || field || '\"'))",
    # A UUID field (wrapped as uuid_hex) as canonical text.
    "CREATE OR REPLACE TEMP MACRO uuid_at(j, field) AS "
    "canonical_uuid(json_extract_string(j, '$.\"' || field || '\"._data_'))",
)

_RAW_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("originator_id", pa.string()),
        ("version", pa.int64()),
        ("topic", pa.string()),
        ("state", pa.binary()),
    ]
)

_EVENTS_SQL = """
SELECT
    position,
    CASE WHEN length(originator_id) = 32 THEN canonical_uuid(originator_id)
         ELSE originator_id END AS aggregate_id,
    version,
    split_part(topic, ':', 2) AS name,
    meta[1] AS recorded_at,
    CASE WHEN length(meta[2]) = 32 THEN canonical_uuid(meta[2]) ELSE meta[2] END AS actor,
    meta[3] AS request_id,
    meta[4] AS source,
    state
FROM (
    SELECT *, json_extract_string(
        state, ['$.timestamp._data_', '$._meta.actor', '$._meta.request_id', '$._meta.source']
    ) AS meta
    FROM (SELECT position, originator_id, version, topic, decode(state) AS state FROM raw_events)
)
"""


class BulkBuildError(Exception):
    """A read model's bulk build failed; its transaction was rolled back."""

    def __init__(self, projection: str, cause: BaseException) -> None:
        super().__init__(f"bulk build of {projection!r} failed: {cause!r}")
        self.projection = projection


@dataclass
class Staged:
    """The events of a store up to ``position``, as the relation ``events`` wants them."""

    events: pa.Table
    position: int
    read_seconds: float
    prepare_seconds: float
    #: ``events`` without the removed records' events, made once for every read model.
    _live: pa.Table | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.events.num_rows)

    def live(self) -> pa.Table:
        """``events`` without any event of a record that was removed (``REMOVED``)."""
        if self._live is None:
            self._live = without_removed(self.events)
        return self._live


def add_macros(con: duckdb.DuckDBPyConnection) -> None:
    for statement in MACROS:
        con.execute(statement)


def read_raw(
    recorder: ApplicationRecorder, upto: int | None = None, progress: Progress | None = None
) -> pa.Table:
    """Every stored event up to position ``upto`` (default: the head), as stored.

    SQLite and PostgreSQL are read with one query each, in one read transaction (a
    consistent snapshot), rows as plain tuples: the library's ``select_notifications``
    builds a dict and an object per row, which costs more than the read itself. Any
    other recorder is read through ``select_notifications``.
    """
    head = recorder.max_notification_id() or 0
    stop = head if upto is None else min(upto, head)
    if isinstance(recorder, PostgresApplicationRecorder):
        table = _postgres_table(recorder, stop)
        if progress is not None:
            progress(table.num_rows, stop)
        return _opened(recorder, table)
    if isinstance(recorder, SQLiteApplicationRecorder):
        pages = _sqlite_pages(recorder, stop)
        if isinstance(recorder, StateOpener):
            pages = _opened_pages(recorder, pages)
        return _read_pages(pages, stop, progress)
    return _read_pages(_notification_pages(recorder, stop), stop, progress)


def _opened(recorder: ApplicationRecorder, table: pa.Table) -> pa.Table:
    """``table`` with the sealed personal fields opened, or erased, as the recorder's own
    reads give them (``domain/privacy.py``): these reads go round the recorder. Only the
    states of topics that may carry personal data go through Python."""
    if not isinstance(recorder, StateOpener) or not table.num_rows:
        return table
    topics = table.column("topic")
    personal = [t for t in pc.unique(topics).to_pylist() if may_carry_personal(t)]
    if not personal:
        return table
    mask = pc.is_in(topics, value_set=pa.array(personal, pa.string())).combine_chunks()
    picked = table.filter(mask)
    states = picked.column("state").to_pylist()
    opened = recorder.open_states(
        list(zip(picked.column("topic").to_pylist(), states, strict=True))
    )
    if all(new is old for new, old in zip(opened, states, strict=True)):
        return table
    replaced = pc.replace_with_mask(table.column("state"), mask, pa.array(opened, pa.binary()))
    return table.set_column(4, "state", replaced)


def _opened_pages(opener: StateOpener, pages: Iterator[list[Row]]) -> Iterator[list[Row]]:
    """Each page with its sealed personal fields opened, or erased (as :func:`_opened`),
    while its rows are still Python tuples: the states go through Python anyway."""
    personal: dict[str, bool] = {}  # by topic: a few dozen of them
    for rows in pages:
        for topic in {row[3] for row in rows}.difference(personal):
            personal[topic] = may_carry_personal(topic)
        picked = [i for i, row in enumerate(rows) if personal[row[3]]]
        if picked:
            opened = opener.open_states([(rows[i][3], rows[i][4]) for i in picked])
            for i, state in zip(picked, opened, strict=True):
                if state is not rows[i][4]:
                    rows[i] = (*rows[i][:4], state)
        yield rows


def _read_pages(
    pages: Iterator[list[Row]], stop: int, progress: Progress | None = None
) -> pa.Table:
    batches: list[pa.RecordBatch] = []
    done = 0
    for rows in pages:
        columns = zip(*rows, strict=True)  # the rows turned into columns, in C
        batches.append(
            pa.RecordBatch.from_arrays(
                [pa.array(values, f.type) for values, f in zip(columns, _RAW_SCHEMA, strict=True)],
                schema=_RAW_SCHEMA,
            )
        )
        done += len(rows)
        if progress is not None:
            progress(done, stop)
    return pa.Table.from_batches(batches, schema=_RAW_SCHEMA)


Row = tuple[int, str, int, str, bytes]


def _sqlite_pages(recorder: SQLiteApplicationRecorder, stop: int) -> Iterator[list[Row]]:
    statement = (
        "SELECT rowid, originator_id, originator_version, topic, state "
        f"FROM {recorder.events_table_name} WHERE rowid <= ? ORDER BY rowid"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        raw = cursor.sqlite_cursor
        raw.row_factory = None
        raw.execute(statement, [stop])
        while rows := raw.fetchmany(PAGE):
            yield rows


def _postgres_table(recorder: PostgresApplicationRecorder, stop: int) -> pa.Table:
    """The events as CSV from ``COPY … TO STDOUT``, parsed by Arrow: no Python object
    per row (fetching rows through psycopg costs about as much as everything else).
    The range is split in :data:`PG_PARTS` parts copied side by side, on connections of
    their own (the server formats each part in its own process)."""
    bounds = [stop * i // PG_PARTS for i in range(PG_PARTS + 1)]
    parts = list(itertools.pairwise(bounds))
    with ThreadPoolExecutor(max_workers=PG_PARTS) as pool:
        tables = list(pool.map(lambda part: _postgres_part(recorder, *part), parts))
    return pa.concat_tables(tables)


#: How many connections copy a PostgreSQL store's events side by side.
PG_PARTS = 2

_CSV_TYPES = {
    "position": pa.int64(),
    "originator_id": pa.string(),
    "version": pa.int64(),
    "topic": pa.string(),
    "state": pa.string(),
}


def _postgres_part(recorder: PostgresApplicationRecorder, after: int, upto: int) -> pa.Table:
    statement = SQL(
        "COPY (SELECT notification_id, replace(originator_id::text, '-', ''), "
        "originator_version, topic, convert_from(state, 'UTF8') FROM {schema}.{table} "
        "WHERE notification_id > {after} AND notification_id <= {upto} "
        "ORDER BY notification_id) TO STDOUT WITH (FORMAT csv)"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
        after=Literal(after),
        upto=Literal(upto),
    )
    buffer = io.BytesIO()
    with (
        recorder.datastore.get_connection() as conn,
        conn.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for chunk in copy:
            buffer.write(chunk)
    if not buffer.tell():
        return _RAW_SCHEMA.empty_table()
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=_RAW_SCHEMA.names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=_CSV_TYPES),
    )
    return table.set_column(4, "state", table.column("state").cast(pa.binary()))


def _notification_pages(recorder: ApplicationRecorder, stop: int) -> Iterator[list[Row]]:
    start = 1
    while start <= stop:
        page = recorder.select_notifications(start, PAGE, stop=stop)
        if not page:
            return
        yield [
            (n.id, _hex(n.originator_id), n.originator_version, n.topic, bytes(n.state))
            for n in page
        ]
        start = page[-1].id + 1


def _hex(originator_id: object) -> str:
    return str(originator_id).replace("-", "")


def stage(
    recorder: ApplicationRecorder, upto: int | None = None, progress: Progress | None = None
) -> Staged:
    """Read the store once and shape its events for :meth:`Projector.build_in_bulk`."""
    started = perf_counter()
    raw = read_raw(recorder, upto, progress)
    read = perf_counter()
    con = duckdb.connect()
    try:
        add_macros(con)
        con.register("raw_events", raw)
        events = con.sql(_EVENTS_SQL).to_arrow_table()
    finally:
        con.close()
    position = int(raw.column("position")[-1].as_py()) if raw.num_rows else 0
    return Staged(events, position, read - started, perf_counter() - read)


def without_removed(events: pa.Table) -> pa.Table:
    """``events`` without any event of a record that was removed (``REMOVED``), in
    their order (filtered in Arrow: no sort, and no copy when nothing was removed)."""
    removals = events.filter(pc.is_in(events.column("name"), value_set=pa.array(REMOVED)))
    if not removals.num_rows:
        return events
    removed = pc.unique(removals.column("aggregate_id"))
    return events.filter(pc.invert(pc.is_in(events.column("aggregate_id"), value_set=removed)))


def build(store: ReadStore, staged: Staged, load: bool = True) -> dict[str, float]:
    """Fill the store's (empty) read models from ``staged`` in one transaction and set
    their positions to its position. Returns the seconds each projector took.

    ``load``: load the projectors' memory from the new tables, as applying more events
    with the handlers needs (a rebuild with no event after ``staged`` skips it: on a
    large store it costs about as much as a small read model's build).

    Refused for a projector that has no bulk path or whose read model is not empty.
    """
    con = store.con
    seconds: dict[str, float] = {}
    add_macros(con)
    try:
        with transaction(con):
            for projector in store.projectors:
                if store.position(projector.name) != 0:
                    raise ValueError(f"{projector.name} is at {store.position(projector.name)}")
                started = perf_counter()
                events = staged.live() if projector.bulk_without_removed else staged.events
                con.register("events", events)
                try:
                    built = projector.build_in_bulk(con)
                except Exception as error:
                    raise BulkBuildError(projector.name, error) from error
                if not built:
                    raise ValueError(f"{projector.name} cannot build in bulk")
                seconds[projector.name] = perf_counter() - started
                con.execute(
                    "UPDATE projection_positions SET position = ? WHERE projection = ?",
                    [staged.position, projector.name],
                )
    except BaseException:
        for projector in store.projectors:
            projector.discard(con)
        raise
    finally:
        con.unregister("events")
    store.moved_to(staged.position, [p.name for p in store.projectors])
    if load:
        for projector in store.projectors:
            projector.load(con)
    return seconds


def has_bulk_path(projector: Projector) -> bool:
    """Whether ``projector`` overrides :meth:`Projector.build_in_bulk`."""
    return type(projector).build_in_bulk is not Projector.build_in_bulk


def can_build_in_bulk(store: ReadStore) -> bool:
    """Whether every projector of ``store`` has a bulk path."""
    return all(has_bulk_path(p) for p in store.projectors)
