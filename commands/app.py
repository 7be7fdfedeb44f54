"""The write-side application: the event store, typed loading, saving with metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    Mapper,
    OperationalError,
    Recording,
    Transcoder,
)

from commands.errors import ConflictError, NotFoundError, StoreUnavailableError
from commands.persistence import CrmMapper, Meta, register_transcodings, save_meta

A = TypeVar("A", bound=Aggregate)

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
    """The eventsourcing settings for a PostgreSQL URL, or else a SQLite file."""
    if not database_url:
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": sqlite_path}
    url = urlparse(database_url)
    if url.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"database URL must start with postgresql://, not {url.scheme}://")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
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


class Crm(Application[UUID]):
    """The event-sourced CRM. Every change goes through :meth:`save_with`."""

    name = "crm"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        #: Called after every successful save (the read side wakes its runner).
        self.commit_listeners: list[Callable[[], None]] = []

    def construct_mapper(self) -> Mapper[UUID]:
        return CrmMapper(transcoder=self.construct_transcoder())

    def construct_transcoder(self) -> Transcoder:
        transcoder = JSONTranscoder()
        register_transcodings(transcoder)
        return transcoder

    def save_with(self, meta: Meta, *aggregates: Aggregate | None) -> list[Recording[UUID]]:
        """Save all pending events of ``aggregates`` atomically, stamped with ``meta``.

        A concurrent writer on any of them raises :class:`ConflictError` and writes nothing.
        """
        try:
            with save_meta(meta):
                recordings = self.save(*aggregates)
        except IntegrityError as error:
            raise ConflictError(
                "a concurrent change got there first; reload and try again"
            ) from error
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error
        for listener in self.commit_listeners:
            listener()
        return recordings

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

    def position(self) -> int:
        """The global position of the newest event in the store (0 when empty)."""
        try:
            return self.recorder.max_notification_id() or 0
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError("the event store is unavailable") from error


def kind_of(cls: type[Any]) -> str:
    return KIND_NAMES.get(cls.__name__, cls.__name__.lower())
