"""The hash chain: every event is linked, at write time, to every event before it.

Each stored event gets a row in the chain table (``<events table>_chain``), written in
the same transaction as the event:

- ``digest`` = SHA-256 of the event as stored: record id, version, topic and state
  (:func:`digest_of`); it names the event whatever position it sits at;
- ``previous``: the position of the event before it in the global order (positions
  may have gaps on PostgreSQL, so the link says which one it follows);
- ``link`` = SHA-256(previous link ‖ position ‖ previous ‖ digest) (:func:`link_of`),
  starting from :data:`GENESIS`.

The link at a position thus commits to the whole history up to it: changing a byte of
any event, removing, inserting or reordering events changes every link from there on.
The chain table is written by the store's own writers only, under the same lock that
keeps positions in commit order (PostgreSQL: the events table's EXCLUSIVE lock;
SQLite: its single writer), so links follow positions exactly. Checking the store
against the chain is :mod:`replay.verify`; a signed checkpoint of a link
(``crm verify --checkpoint``) makes rewriting the history *and* the chain detectable.

Both recorders are selected by ``APPLICATION_RECORDER_TOPIC`` (``commands.app.store_env``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from commands.sealing import KeyAccess, keys_table_name, new_secret, secrets_table_name
from domain.integrity import GENESIS, chain_table_name, digest_of, link_of
from domain.privacy import may_carry_personal


def chain_rows(
    head: tuple[int, bytes] | None, positions: Sequence[int], events: Sequence[StoredEvent]
) -> list[tuple[int, int, bytes, bytes]]:
    """The chain rows (position, previous, digest, link) of ``events`` just inserted at
    ``positions``, following the chain's ``head`` (position, link), None when empty."""
    previous, link = head if head is not None else (0, GENESIS)
    rows = []
    for position, event in sorted(zip(positions, events, strict=True), key=lambda p: p[0]):
        digest = digest_of(
            event.originator_id, event.originator_version, event.topic, bytes(event.state)
        )
        link = link_of(link, position, previous, digest)
        rows.append((position, previous, digest, link))
        previous = position
    return rows


class OpenedReads(KeyAccess):
    """What both recorders share: their reads open sealed states (or show them erased),
    and their key rows are read in a transaction of their own."""

    datastore: Any

    def read_keys(self, subjects: Sequence[str]) -> dict[str, bytes | None]:
        with self.datastore.transaction(commit=False) as cursor:
            return self.select_keys(cursor, subjects)

    def index_secret(self, name: str) -> bytes:
        with self.datastore.transaction(commit=False) as cursor:
            found = self.select_secret(cursor, name)
        if found is not None:
            return found
        # Whichever process gets here first makes it; the others' inserts do nothing,
        # and every one of them reads the one that was committed.
        with self.datastore.transaction(commit=True) as cursor:
            self.insert_secret(cursor, name, new_secret())
            made = self.select_secret(cursor, name)
        assert made is not None
        return made

    def stored_events(self, originator_id: UUID) -> Sequence[StoredEvent]:
        events: Sequence[StoredEvent] = super().select_events(originator_id)  # type: ignore[misc]
        return events

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        page = super().select_notifications(  # type: ignore[misc]
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )
        return self.open_notifications(page)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        events = super().select_events(  # type: ignore[misc]
            originator_id, gt=gt, lte=lte, desc=desc, limit=limit
        )
        return self.open_events(events)


class ChainedSQLiteApplicationRecorder(OpenedReads, SQLiteApplicationRecorder):
    """SQLite's recorder, writing the chain rows of every insert in its transaction, and
    sealing personal fields with keys of the same transaction (``commands/sealing.py``)."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.chain_table_name = chain_table_name(self.events_table_name)
        self.keys_table_name = keys_table_name(self.events_table_name)
        self.create_table_statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
            "position INTEGER PRIMARY KEY, previous INTEGER NOT NULL, "
            "digest BLOB NOT NULL, link BLOB NOT NULL)"
        )
        self.create_table_statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.keys_table_name} ("
            "subject TEXT PRIMARY KEY, data_key BLOB)"
        )
        self.secrets_table_name = secrets_table_name(self.events_table_name)
        self.create_table_statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.secrets_table_name} ("
            "name TEXT PRIMARY KEY, secret BLOB NOT NULL)"
        )

    def select_secret(self, cursor: Any, name: str) -> bytes | None:
        cursor.execute(f"SELECT secret FROM {self.secrets_table_name} WHERE name = ?", (name,))
        row = cursor.fetchone()
        return None if row is None else bytes(row[0])

    def insert_secret(self, cursor: Any, name: str, secret: bytes) -> None:
        cursor.execute(
            f"INSERT INTO {self.secrets_table_name} (name, secret) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, secret),
        )

    def select_keys(self, cursor: Any, subjects: Sequence[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for start in range(0, len(subjects), 900):
            chunk = subjects[start : start + 900]
            cursor.execute(
                f"SELECT subject, data_key FROM {self.keys_table_name} "
                f"WHERE subject IN ({','.join('?' * len(chunk))})",
                list(chunk),
            )
            found.update(
                (row[0], None if row[1] is None else bytes(row[1])) for row in cursor.fetchall()
            )
        return found

    def insert_keys(self, cursor: Any, keys: Mapping[str, bytes]) -> None:
        cursor.executemany(
            f"INSERT INTO {self.keys_table_name} (subject, data_key) VALUES (?, ?)",
            list(keys.items()),
        )

    def destroy_keys(self, cursor: Any, subjects: Sequence[str]) -> None:
        cursor.executemany(
            f"INSERT INTO {self.keys_table_name} (subject, data_key) VALUES (?, NULL) "
            "ON CONFLICT (subject) DO UPDATE SET data_key = NULL",
            [(s,) for s in subjects],
        )

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        stored_events = self.seal_events(c, stored_events)
        self.shred_erased(c, stored_events)
        positions = super()._insert_events(c, stored_events, **kwargs)
        if not stored_events or positions is None:
            return positions
        # The insert above holds SQLite's write lock: nobody else extends the chain now.
        c.execute(
            f"SELECT position, link FROM {self.chain_table_name} ORDER BY position DESC LIMIT 1"
        )
        row = c.fetchone()
        head = (int(row[0]), bytes(row[1])) if row is not None else None
        c.executemany(
            f"INSERT INTO {self.chain_table_name} (position, previous, digest, link) "
            "VALUES (?, ?, ?, ?)",
            chain_rows(head, positions, stored_events),
        )
        return positions


class ChainedPostgresApplicationRecorder(OpenedReads, PostgresApplicationRecorder):
    """PostgreSQL's recorder, writing the chain rows of every insert in its transaction,
    while it holds the events table's lock; sealing personal fields first
    (``commands/sealing.py``: a key made for a new contact is committed just before its
    events, and an erasure's key destroyed in the erasure's own transaction)."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ValueError("the hash chain needs POSTGRES_ENABLE_DB_FUNCTIONS off")
        self.chain_table_name = chain_table_name(self.events_table_name)
        table = Identifier(self.chain_table_name)
        schema = Identifier(datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (position bigint PRIMARY KEY, "
                "previous bigint NOT NULL, digest bytea NOT NULL, link bytea NOT NULL)"
            ).format(schema=schema, table=table)
        )
        self._select_chain_head = SQL(
            "SELECT position, link FROM {schema}.{table} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, table=table)
        # One statement of parallel arrays for any number of rows: psycopg dumps arrays
        # of plain types in C, where the library's array of a composite type, and an
        # executemany, cost Python time per row (most of a large save's time).
        self._insert_chain = SQL(
            "INSERT INTO {schema}.{table} (position, previous, digest, link) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[])"
        ).format(schema=schema, table=table)
        self._insert_arrays = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self.keys_table_name = keys_table_name(self.events_table_name)
        keys = Identifier(self.keys_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} "
                "(subject text PRIMARY KEY, data_key bytea)"
            ).format(schema=schema, table=keys)
        )
        self._select_keys = SQL(
            "SELECT subject, data_key FROM {schema}.{table} WHERE subject = ANY(%s)"
        ).format(schema=schema, table=keys)
        self._insert_keys = SQL(
            "INSERT INTO {schema}.{table} (subject, data_key) "
            "SELECT * FROM unnest(%s::text[], %s::bytea[])"
        ).format(schema=schema, table=keys)
        self._destroy_keys = SQL(
            "INSERT INTO {schema}.{table} (subject, data_key) "
            "SELECT unnest(%s::text[]), NULL "
            "ON CONFLICT (subject) DO UPDATE SET data_key = NULL"
        ).format(schema=schema, table=keys)
        self.secrets_table_name = secrets_table_name(self.events_table_name)
        secrets_table = Identifier(self.secrets_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} "
                "(name text PRIMARY KEY, secret bytea NOT NULL)"
            ).format(schema=schema, table=secrets_table)
        )
        # Read committed (the store's level): the select sees a secret that a concurrent
        # process committed while this insert waited on it and then did nothing.
        self._insert_secret = SQL(
            "INSERT INTO {schema}.{table} (name, secret) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING"
        ).format(schema=schema, table=secrets_table)
        self._select_secret = SQL("SELECT secret FROM {schema}.{table} WHERE name = %s").format(
            schema=schema, table=secrets_table
        )

    def select_secret(self, cursor: Any, name: str) -> bytes | None:
        cursor.execute(self._select_secret, (name,))
        row = cursor.fetchone()
        return None if row is None else bytes(row["secret"])

    def insert_secret(self, cursor: Any, name: str, secret: bytes) -> None:
        cursor.execute(self._insert_secret, (name, secret))

    def select_keys(self, cursor: Any, subjects: Sequence[str]) -> dict[str, bytes | None]:
        cursor.execute(self._select_keys, (list(subjects),))
        return {
            row["subject"]: None if row["data_key"] is None else bytes(row["data_key"])
            for row in cursor.fetchall()
        }

    def insert_keys(self, cursor: Any, keys: Mapping[str, bytes]) -> None:
        cursor.execute(self._insert_keys, (list(keys), list(keys.values())))

    def destroy_keys(self, cursor: Any, subjects: Sequence[str]) -> None:
        cursor.execute(self._destroy_keys, (list(subjects),))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if any(may_carry_personal(e.topic) for e in stored_events):
            with self.datastore.transaction(commit=True) as cursor:
                stored_events = self.seal_events(cursor, stored_events)
        positions: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        return positions

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # Inside the transaction that inserts the events (before the table's lock).
        self.shred_erased(curs, stored_events)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # As the library's (lock, notify, insert returning the positions in order), with
        # the events as parallel arrays instead of an array of a composite type.
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_arrays,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not stored_events or not positions:
            return positions
        # Still inside the transaction that locked the events table (EXCLUSIVE): every
        # other writer waits, so the head read here is the chain's head.
        curs.execute(self._select_chain_head, prepare=True)
        row = curs.fetchone()
        head = (int(row["position"]), bytes(row["link"])) if row is not None else None
        rows = chain_rows(head, positions, stored_events)
        curs.execute(self._insert_chain, [list(column) for column in zip(*rows, strict=True)])
        return positions


class AdoptError(Exception):
    """The unchained events are not those of a store written before the chain existed."""


#: (position, record id, version, topic, state) as stored.
_Row = tuple[int, Any, int, str, bytes]


def adopt_unchained(recorder: PostgresApplicationRecorder | SQLiteApplicationRecorder) -> int:
    """Chain the events a store holds from before the hash chain existed; how many.

    A store written by an earlier release has events but no chain rows, or chain rows
    only from some position ``p0`` on (the first write after the upgrade started the
    chain at its own position, from :data:`GENESIS`). Adoption chains every event from
    the first, in one transaction under the writers' lock, once it has made sure that
    this is what the store is: every unchained event comes before ``p0``, and the chain
    from ``p0`` on is intact. Anything else — an unchained event after ``p0``, a broken
    link — is refused: adopting it would launder tampering.
    """
    chain = chain_table_name(recorder.events_table_name)
    if isinstance(recorder, PostgresApplicationRecorder):
        schema = recorder.datastore.schema
        events_table, chain = f'"{schema}"."{recorder.events_table_name}"', f'"{schema}"."{chain}"'
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"LOCK TABLE {events_table} IN EXCLUSIVE MODE")  # as writers do
            cursor.execute(
                "SELECT notification_id AS p, originator_id AS i, originator_version AS v, "
                f"topic AS t, state AS s FROM {events_table} ORDER BY notification_id"
            )
            rows = [(r["p"], r["i"], r["v"], r["t"], bytes(r["s"])) for r in cursor.fetchall()]
            cursor.execute(f"SELECT position AS p, link AS l FROM {chain} ORDER BY position")
            links = [(r["p"], bytes(r["l"])) for r in cursor.fetchall()]
            adopted = _adopt(rows, links)
            if adopted:
                cursor.execute(f"DELETE FROM {chain}")
                cursor.executemany(
                    f"INSERT INTO {chain} (position, previous, digest, link) "
                    "VALUES (%s, %s, %s, %s)",
                    _rechained(rows),
                )
            return adopted
    with recorder.datastore.transaction(commit=True) as cursor:
        # A write first, so that this transaction holds SQLite's write lock throughout.
        cursor.execute(f"DELETE FROM {chain} WHERE position IS NULL")
        cursor.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} ORDER BY rowid"
        )
        rows = [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in cursor.fetchall()]
        cursor.execute(f"SELECT position, link FROM {chain} ORDER BY position")
        links = [(r[0], bytes(r[1])) for r in cursor.fetchall()]
        adopted = _adopt(rows, links)
        if adopted:
            cursor.execute(f"DELETE FROM {chain}")
            cursor.executemany(
                f"INSERT INTO {chain} (position, previous, digest, link) VALUES (?, ?, ?, ?)",
                _rechained(rows),
            )
        return adopted


def _adopt(rows: list[_Row], links: list[tuple[int, bytes]]) -> int:
    """How many events to adopt (0: none), once the store is proven to be an old one."""
    chained = {position for position, _ in links}
    unchained = [row[0] for row in rows if row[0] not in chained]
    if not unchained:
        return 0
    start = links[0][0] if links else None
    if start is not None and max(unchained) > start:
        raise AdoptError(
            f"the event at position {max(unchained)} is not in the chain, which began at "
            f"position {start}: that is not an old store; run crm verify"
        )
    if start is not None:  # the chain since the upgrade must be intact
        expected = _rechained([row for row in rows if row[0] >= start])
        if [(p, link) for p, _, _, link in expected] != links:
            raise AdoptError(
                f"the chain from position {start} on does not match its events; run crm verify"
            )
    return len(unchained)


def _rechained(rows: list[_Row]) -> list[tuple[int, int, bytes, bytes]]:
    return chain_rows(
        None,
        [row[0] for row in rows],
        [StoredEvent(row[1], row[2], row[3], row[4]) for row in rows],
    )
