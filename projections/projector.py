"""The base of every projector: its tables, its handlers by event name, batch apply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import duckdb

from projections.events import Recorded
from projections.tables import Table

P = TypeVar("P", bound="Projector")
Handler = Callable[[Any, Recorded], None]


class ProjectionError(Exception):
    """Raised when a projector fails on an event; the batch is rolled back and the
    runner stops: an event is never skipped."""

    def __init__(self, projection: str, event: Recorded, cause: BaseException) -> None:
        super().__init__(
            f"projection {projection!r} failed at position {event.position} "
            f"({event.name} of {event.aggregate_id} v{event.version}): {cause!r}"
        )
        self.projection = projection
        self.position = event.position
        self.event_name = event.name


def on(*names: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of the named events (``"Deal.Opened"``)."""

    def mark(method: Handler) -> Handler:
        method.__dict__.setdefault("_handles", []).extend(names)
        return method

    return mark


class Projector:
    """One read model. Subclasses declare ``name``, ``tables`` and ``@on`` handlers.

    ``apply`` runs inside the runner's transaction; it must only buffer and write rows
    (``Table.flush``), never commit. State a projector keeps in memory between batches
    is loaded from its tables in ``load`` and must be derivable from them, because the
    tables, not the memory, survive a crash.
    """

    name: ClassVar[str]
    handlers: ClassVar[dict[str, Handler]]
    #: A projector that sees every event (the audit log) overrides ``on_any``.
    sees_everything: ClassVar[bool] = False
    #: Whether its bulk build sees ``events`` without the events of removed records
    #: (``REMOVED``): true for a read model whose rows about a record come from that
    #: record's own events only, so that a removed record is one that never was.
    bulk_without_removed: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, Handler] = {}
        for base in reversed(cls.__mro__):
            for attr in vars(base).values():
                for event_name in getattr(attr, "_handles", ()):
                    handlers[event_name] = attr
        cls.handlers = handlers

    def __init__(self) -> None:
        self.tables: list[Table] = self.declare_tables()

    def declare_tables(self) -> list[Table]:
        raise NotImplementedError

    def wants(self, event_name: str) -> bool:
        return self.sees_everything or event_name in self.handlers

    def on_any(self, event: Recorded) -> None:
        """The handler of events without an ``@on`` handler, when ``sees_everything``."""

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in self.tables:
            for statement in table.ddl():
                con.execute(statement)

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        """Load in-memory state from the tables (after a start or a rollback)."""

    def apply(self, con: duckdb.DuckDBPyConnection, events: Sequence[Recorded]) -> None:
        for event in events:
            handler = self.handlers.get(event.name)
            try:
                if handler is not None:
                    handler(self, event)
                elif self.sees_everything:
                    self.on_any(event)
            except Exception as error:
                raise ProjectionError(self.name, event, error) from error
        for table in self.tables:
            table.flush(con)
        self.after_flush(con)

    def after_flush(self, con: duckdb.DuckDBPyConnection) -> None:
        """Statements that must follow the batch's rows (deleting rows written by earlier
        batches, which are not in memory); in the same transaction."""

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Fill this read model's empty tables in SQL from the relation ``events``
        (every stored event up to the build's position; see :mod:`projections.bulk`),
        exactly as the handlers would have filled them, state tables included. Runs in
        the builder's transaction; must not commit. False: no bulk path (the default).
        """
        return False

    def discard(self, con: duckdb.DuckDBPyConnection) -> None:
        """Forget a failed batch: drop buffered rows and reload state from the tables."""
        for table in self.tables:
            table.discard()
        self.load(con)
