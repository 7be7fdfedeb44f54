"""The write-side application: the event store, typed loading, saving with metadata."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    ApplicationRecorder,
    EventStore,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    Mapper,
    Notification,
    OperationalError,
    Recording,
    Transcoder,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresFactory
from eventsourcing.sqlite import SQLiteAggregateRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from commands.chain import ChainedPostgresApplicationRecorder, ChainedSQLiteApplicationRecorder
from commands.errors import ConflictError, NotFoundError, StoreUnavailableError
from commands.group_commit import GroupCommitter
from commands.persistence import CrmMapper, Meta, register_transcodings, save_meta
from commands.sealing import KeyAccess, new_secret
from domain.account import Account
from domain.contact import EMAIL_SCOPE, Contact, email_key_id
from domain.deal import Deal
from domain.interaction import Interaction
from domain.pipeline import Pipeline
from domain.task import Task
from domain.user import User

A = TypeVar("A", bound=Aggregate)
log = logging.getLogger(__name__)

KIND_NAMES: dict[str, str] = {
    "Account": "account",
    "Contact": "contact",
    "Pipeline": "pipeline",
    "Deal": "deal",
    "Interaction": "interaction",
    "Task": "task",
    "User": "user",
}


def store_env(database_url: str | None, sqlite_path: str, pool_size: int = 10) -> dict[str, str]:
    """The eventsourcing settings for a PostgreSQL URL, or else a SQLite file; either
    store's recorder writes the hash chain (``commands/chain.py``)."""
    if not database_url:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": sqlite_path,
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedSQLiteApplicationRecorder),
        }
    url = urlparse(database_url)
    if url.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"database URL must start with postgresql://, not {url.scheme}://")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": get_topic(ChainedPostgresApplicationRecorder),
        "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "y",
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"]
    return env


#: A snapshot of a record is taken every this many of its events, so that loading a
#: record replays at most this many events after its latest snapshot, however long its
#: history (``CRM_SNAPSHOT_EVERY``; 0 takes none).
SNAPSHOT_EVERY = 20


#: The PostgreSQL advisory lock under which a process creates (or checks) its tables.
DDL_LOCK = 0x43524D5F44444C  # "CRM_DDL"


@contextmanager
def one_at_a_time(factory: InfrastructureFactory[Any]) -> Iterator[None]:
    """Serialize the library's table creation across processes on one PostgreSQL
    database: its ``CREATE TABLE / TYPE / INDEX IF NOT EXISTS`` run by several processes
    starting at once (API workers, a projector, the relay) fail with "tuple concurrently
    updated" or a duplicate ``pg_type`` key. SQLite needs nothing: its writers queue."""
    if not isinstance(factory, PostgresFactory):
        yield
        return
    with factory.datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK,))
            conn.commit()


class Crm(Application[UUID]):
    """The event-sourced CRM. Every change goes through :meth:`save_with`."""

    name = "crm"
    # Snapshotting on (the snapshot store exists); the intervals are set per instance.
    is_snapshotting_enabled = True

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        group_commit: bool = True,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        #: A record gets a snapshot when one of its events' version is a multiple of this.
        self.snapshot_every = int((env or {}).get("CRM_SNAPSHOT_EVERY", snapshot_every))
        super().__init__(env)
        #: Called after every successful save (the read side wakes its runner).
        self.commit_listeners: list[Callable[[], None]] = []
        #: Concurrent saves share a transaction (``commands/group_commit.py``).
        self.committer = GroupCommitter(self.recorder, enabled=group_commit)

    def construct_mapper(self) -> Mapper[UUID]:
        return CrmMapper(transcoder=self.construct_transcoder())

    def construct_recorder(self) -> ApplicationRecorder:
        with one_at_a_time(self.factory):
            return super().construct_recorder()

    def construct_snapshot_store(self) -> EventStore[UUID]:
        with one_at_a_time(self.factory):
            return super().construct_snapshot_store()

    def construct_transcoder(self) -> Transcoder:
        transcoder = JSONTranscoder()
        register_transcodings(transcoder)
        return transcoder

    def save_with(self, meta: Meta, *aggregates: Aggregate | None) -> list[Recording[UUID]]:
        """Save all pending events of ``aggregates`` atomically, stamped with ``meta``,
        in one transaction with any saves made at the same moment (group commit).

        A concurrent writer on any of them raises :class:`ConflictError` and writes nothing.
        """
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        # What ``processing.collect_events`` does, without its runtime protocol checks
        # per object (a third of the save's time for an import's thousands of records).
        for aggregate in aggregates:
            if aggregate is not None:
                processing.events.extend(aggregate.collect_events())
                processing.aggregates[aggregate.id] = aggregate
        erased = [a.id for a in aggregates if isinstance(a, Contact) and a.erased]
        if erased:
            # Before the erasure is stored, not after: a failure here leaves nothing
            # half-done (the erasure is not stored; a retry does it all), and contacts
            # get no new snapshots, so none can appear once the key is gone.
            self.shred_snapshots(erased)
        try:
            with save_meta(meta):
                stored = [self.mapper.to_stored_event(e) for e in processing.events]
            positions = self.committer.insert(stored)
        except IntegrityError as error:
            raise ConflictError(
                "a concurrent change got there first; reload and try again"
            ) from error
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error
        recordings = [
            Recording(
                domain_event,
                Notification(
                    id=position,
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                ),
            )
            for domain_event, s, position in zip(processing.events, stored, positions, strict=True)
        ]
        self._snapshot(processing)
        for listener in self.commit_listeners:
            listener()
        return recordings

    def _snapshot(self, processing: ProcessingEvent[UUID]) -> None:
        """Snapshot each saved record whose new events passed a multiple of
        ``snapshot_every``, as it stands in memory now (already committed). A snapshot
        only speeds loading up: failing to write one fails nothing."""
        if self.snapshots is None or self.snapshot_every <= 0:
            return
        due = {
            e.originator_id
            for e in processing.events
            if e.originator_version % self.snapshot_every == 0
        }
        for record_id in due:
            aggregate = processing.aggregates.get(record_id)
            if not isinstance(aggregate, SNAPSHOTTED):
                continue
            try:
                self.snapshots.put([Snapshot.take(aggregate)])
            except Exception:  # e.g. a concurrent snapshot of the same version
                log.warning("no snapshot of %s v%d", record_id, aggregate.version, exc_info=True)

    def shred_snapshots(self, record_ids: list[UUID]) -> None:
        """Delete the snapshots of erased contacts (taken before contacts stopped getting
        any): they hold the personal fields in plain. Run by every save of an erased
        contact (:meth:`save_with`), also an erasure run again, which saves nothing."""
        if self.snapshots is None:
            return
        recorder = self.snapshots.recorder
        try:
            if isinstance(recorder, PostgresAggregateRecorder):
                statement = SQL("DELETE FROM {}.{} WHERE originator_id = ANY(%s)").format(
                    Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
                )
                with recorder.datastore.transaction(commit=True) as cursor:
                    cursor.execute(statement, (record_ids,))
            elif isinstance(recorder, SQLiteAggregateRecorder):
                with recorder.datastore.transaction(commit=True) as cursor:
                    cursor.executemany(
                        f"DELETE FROM {recorder.events_table_name} WHERE originator_id = ?",
                        [(i.hex,) for i in record_ids],
                    )
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error

    def load(self, cls: type[A], record_id: UUID, version: int | None = None) -> A:
        """The record of type ``cls``, or :class:`NotFoundError` (also for the wrong type)."""
        try:
            aggregate: Aggregate = self.repository.get(record_id, version=version)
        except AggregateNotFoundError:
            raise NotFoundError(kind_of(cls), record_id) from None
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error
        if not isinstance(aggregate, cls):
            raise NotFoundError(kind_of(cls), record_id)
        return aggregate

    def find(self, cls: type[A], record_id: UUID) -> A | None:
        try:
            return self.load(cls, record_id)
        except NotFoundError:
            return None

    def unsealed_versions(self, contact_id: UUID) -> list[int]:
        """The versions of the contact's events stored with personal values in plain."""
        recorder = self.recorder
        assert isinstance(recorder, KeyAccess)
        try:
            return recorder.unsealed_versions(contact_id)
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error

    @cached_property
    def index_secret(self) -> bytes:
        """The store's secret that keys the ids of contacts' e-mail keys
        (``domain.contact.email_key_id``): read once per Crm, made on first use."""
        recorder = self.recorder
        if not isinstance(recorder, KeyAccess):
            return new_secret()  # an in-memory store: it lives and dies with this object
        try:
            return recorder.index_secret(EMAIL_SCOPE)
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error

    def email_key_id(self, email: str) -> UUID:
        """The id of the index key of a contact's (normalized) e-mail address here."""
        return email_key_id(self.index_secret, email)

    def position(self) -> int:
        """The global position of the newest event in the store (0 when empty)."""
        try:
            return self.recorder.max_notification_id() or 0
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error


#: The records that get snapshots (any record's stream can grow long). Not contacts:
#: a snapshot would hold a contact's personal fields in plain, outside its sealed events
#: (``commands/sealing.py``); their histories are short.
SNAPSHOTTED: tuple[type[Aggregate], ...] = (
    Account,
    Deal,
    Interaction,
    Pipeline,
    Task,
    User,
)


def kind_of(cls: type[Any]) -> str:
    return KIND_NAMES.get(cls.__name__, cls.__name__.lower())
