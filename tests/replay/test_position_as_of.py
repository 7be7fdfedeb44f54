"""``position_as_of``: the end of the longest prefix of the global order recorded by a
moment, found by binary search, on SQLite and PostgreSQL.

The events here are written straight through the store's recorder with timestamps
chosen by the test (the search reads nothing else of them); gaps in the notification
ids, as PostgreSQL leaves them, are made by deleting rows. The expected answers come
from reading every event: the last event before the first one recorded after the moment.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from commands.app import Crm
from replay.as_of import position_as_of, recorded_at

T0 = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)


def write(recorder: ApplicationRecorder, *commands: Sequence[datetime]) -> list[int]:
    """One insert per command, its events with the given timestamps and one metadata."""
    positions: list[int] = []
    for stamps in commands:
        meta = {"actor": "system", "request_id": uuid.uuid4().hex, "source": "test"}
        events = [
            StoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=1,
                topic="tests.replay:Synthetic.Happened",
                state=orjson.dumps(
                    {
                        "timestamp": {"_type_": "datetime_iso", "_data_": stamp.isoformat()},
                        "_meta": meta,
                    }
                ),
            )
            for stamp in stamps
        ]
        positions += recorder.insert_events(events) or []
    return positions


def delete(recorder: ApplicationRecorder, positions: Sequence[int]) -> None:
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=True) as cursor:
            for position in positions:
                cursor.execute(
                    f"DELETE FROM {recorder.events_table_name} WHERE rowid = ?", [position]
                )
        return
    assert isinstance(recorder, PostgresApplicationRecorder)
    statement = SQL("DELETE FROM {schema}.{table} WHERE notification_id = ANY(%s)").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name)
    )
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(statement, [list(positions)])


def expected(recorder: ApplicationRecorder, at: datetime) -> int:
    """By reading every event: the last one before the first recorded after ``at``."""
    answer = 0
    for notification in recorder.select_notifications(1, 1_000_000):
        stamp = orjson.loads(notification.state)["timestamp"]["_data_"]
        if datetime.fromisoformat(stamp) > at:
            break
        answer = notification.id
    return answer


def test_an_empty_store_is_at_zero_whenever(crm: Crm) -> None:
    assert position_as_of(crm.recorder, T0) == 0
    assert recorded_at(crm.recorder, 5) is None


def test_before_the_first_event_is_zero_and_after_the_last_is_the_head(crm: Crm) -> None:
    positions = write(crm.recorder, *([T0 + n * SECOND] for n in range(5)))
    assert position_as_of(crm.recorder, T0 - MICRO) == 0
    assert position_as_of(crm.recorder, T0) == positions[0]
    assert position_as_of(crm.recorder, T0 + 4 * SECOND) == positions[-1]
    assert position_as_of(crm.recorder, datetime(9999, 12, 31, tzinfo=UTC)) == positions[-1]
    assert position_as_of(crm.recorder, datetime(1, 1, 1, tzinfo=UTC)) == 0


def test_the_search_is_exact_on_gaps_in_the_ids(crm: Crm) -> None:
    positions = write(crm.recorder, *([T0 + n * SECOND] for n in range(60)))
    # Gaps at the start, in runs, alone and at the end.
    gone = [positions[i] for i in (0, 1, 7, 8, 9, 10, 11, 30, 57, 58, 59)]
    delete(crm.recorder, gone)
    kept = [p for p in positions if p not in gone]
    for half_seconds in range(-2, 125):
        at = T0 + half_seconds * SECOND / 2
        assert position_as_of(crm.recorder, at) == expected(crm.recorder, at), at
    # Each kept event's own moment gives exactly its position, a gap's the one before.
    for index, position in enumerate(positions):
        answer = position_as_of(crm.recorder, T0 + index * SECOND)
        assert answer == max((p for p in kept if p <= position), default=0)
    assert recorded_at(crm.recorder, positions[9]) == T0 + 6 * SECOND
    assert recorded_at(crm.recorder, positions[-1]) == T0 + 56 * SECOND
    assert recorded_at(crm.recorder, positions[1]) is None


def test_equal_timestamps_are_all_in_or_all_out(crm: Crm) -> None:
    same = T0 + SECOND
    positions = write(crm.recorder, [T0], [same], [same], [same, same], [same], [T0 + 2 * SECOND])
    assert position_as_of(crm.recorder, same - MICRO) == positions[0]
    assert position_as_of(crm.recorder, same) == positions[-2]
    assert position_as_of(crm.recorder, same + MICRO) == positions[-2]


def test_events_out_of_order_within_a_command_end_the_prefix_at_the_first_later_one(
    crm: Crm,
) -> None:
    # Within one command the events are stored aggregate by aggregate: their timestamps
    # are microseconds apart and out of order.
    positions = write(
        crm.recorder,
        [T0],
        [T0 + 3 * MICRO, T0 + 1 * MICRO, T0 + 5 * MICRO, T0 + 2 * MICRO],
        [T0 + 9 * MICRO],
    )
    assert position_as_of(crm.recorder, T0 + 2 * MICRO) == positions[0]
    assert position_as_of(crm.recorder, T0 + 4 * MICRO) == positions[2]
    assert position_as_of(crm.recorder, T0 + 5 * MICRO) == positions[4]
    for micros in range(-1, 11):
        at = T0 + micros * MICRO
        assert position_as_of(crm.recorder, at) == expected(crm.recorder, at), micros


def test_a_command_of_many_events_in_reverse_order_is_settled_exactly(crm: Crm) -> None:
    stamps = [T0 + n * MICRO for n in range(30)]
    before = write(crm.recorder, *([T0 - n * SECOND] for n in range(40, 0, -1)))
    positions = write(crm.recorder, stamps[::-1], [T0 + SECOND])
    write(crm.recorder, *([T0 + 2 * SECOND + n * MICRO] for n in range(100)))
    for micros in (0, 1, 15, 28):
        assert position_as_of(crm.recorder, T0 + micros * MICRO) == before[-1], micros
    assert position_as_of(crm.recorder, T0 + 29 * MICRO) == positions[-2]
    for micros in range(-1, 100):
        at = T0 + 2 * SECOND + micros * MICRO
        assert position_as_of(crm.recorder, at) == expected(crm.recorder, at), micros


def test_a_moment_without_a_time_zone_is_refused(crm: Crm) -> None:
    with pytest.raises(ValueError, match="time zone"):
        position_as_of(crm.recorder, datetime(2026, 9, 30, 12, 0))
