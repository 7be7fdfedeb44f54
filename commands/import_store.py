"""Reads an import makes of the store in bulk: one query for many records, never one
per row (``commands/importing.py``)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from commands.app import Crm
from commands.errors import StoreUnavailableError
from domain.privacy import StateOpener

#: SQLite takes at most 32,766 parameters in a statement (999 before 3.32): stay well below.
SQLITE_CHUNK = 900


def _chunks(ids: Collection[UUID], size: int) -> Iterator[list[UUID]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def _rows(crm: Crm, sql_pg: str, sql_lite: str, ids: Collection[UUID]) -> list[Sequence[Any]]:
    """Rows of a query over the events table ``{t}`` for ``ids`` (PostgreSQL: one
    ``= ANY(%s)`` query; SQLite: ``IN (…)`` in chunks), as tuples."""
    if not ids:
        return []
    recorder = crm.recorder
    try:
        if isinstance(recorder, PostgresApplicationRecorder):
            table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(sql_pg.format(t=table), (list(ids),))  # type: ignore[arg-type]
                return [tuple(row.values()) for row in cursor.fetchall()]
        assert isinstance(recorder, SQLiteApplicationRecorder)
        rows: list[Sequence[Any]] = []
        with recorder.datastore.transaction(commit=False) as cursor:
            for chunk in _chunks(ids, SQLITE_CHUNK):
                marks = ",".join("?" * len(chunk))
                query = sql_lite.format(t=recorder.events_table_name, ids=marks)
                cursor.execute(query, [i.hex for i in chunk])
                rows.extend(tuple(row) for row in cursor.fetchall())
        return rows
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailableError("the event store is unavailable") from error


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def existing_ids(crm: Crm, ids: Collection[UUID]) -> set[UUID]:
    """Which of ``ids`` are records in the store (one query)."""
    rows = _rows(
        crm,
        "SELECT originator_id FROM {t} WHERE originator_id = ANY(%s) AND originator_version = 1",
        "SELECT originator_id FROM {t} WHERE originator_id IN ({ids}) AND originator_version = 1",
        ids,
    )
    return {_uuid(row[0]) for row in rows}


def load_many(crm: Crm, ids: Collection[UUID]) -> dict[UUID, Aggregate]:
    """The records of ``ids`` that exist, as they stand now, from one query of their
    events (snapshots are not read: records an import refers to have short histories)."""
    rows = _rows(
        crm,
        "SELECT originator_id, originator_version, topic, state FROM {t} "
        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version",
        "SELECT originator_id, originator_version, topic, state FROM {t} "
        "WHERE originator_id IN ({ids}) ORDER BY originator_id, originator_version",
        ids,
    )
    records: dict[UUID, Aggregate] = {}
    # Read round the recorder: its sealed personal fields are opened as its reads do.
    recorder = crm.recorder
    assert isinstance(recorder, StateOpener)
    states = recorder.open_states([(row[2], bytes(row[3])) for row in rows])
    for (originator_id, version, topic, _), state in zip(rows, states, strict=True):
        record_id = _uuid(originator_id)
        event = crm.mapper.to_domain_event(StoredEvent(record_id, version, topic, state))
        records[record_id] = event.mutate(records.get(record_id))  # type: ignore[attr-defined]
    return records


def ids_with_topics(crm: Crm, topics: Sequence[str]) -> set[UUID]:
    """The ids of every record with an event of one of ``topics`` (a scan of the store:
    for rare lookups such as pipelines by name)."""
    recorder = crm.recorder
    try:
        if isinstance(recorder, PostgresApplicationRecorder):
            table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT DISTINCT originator_id FROM {table} WHERE topic = ANY(%s)",  # type: ignore[arg-type]
                    (list(topics),),
                )
                return {_uuid(row["originator_id"]) for row in cursor.fetchall()}
        assert isinstance(recorder, SQLiteApplicationRecorder)
        marks = ",".join("?" * len(topics))
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT DISTINCT originator_id FROM {recorder.events_table_name} "
                f"WHERE topic IN ({marks})",
                list(topics),
            )
            return {_uuid(row[0]) for row in cursor.fetchall()}
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailableError("the event store is unavailable") from error
