"""Any record as it stood at a version or a moment, and its history with field-level
before/after.

"As of a moment" means *as recorded by then*: an event counts when its own
``timestamp`` (the UTC time it was recorded, set by the write side as the command is
decided) is at or before the moment. The time an interaction *happened* is a field of
the record, not the clock of its history: a call logged today about last Monday is
not part of the record as of last Tuesday.

Records can have tens of thousands of events, so the version as of a moment is found
by binary search over the versions: each probe reads and decodes one event, and the
record is then loaded at that version from its latest snapshot before it. This relies
on the timestamps of one record's events never decreasing with the version, which
holds in practice: each event is stamped when its command is decided, after the
record was loaded at the previous version, and the write side refuses a stale
version. (A server clock stepped backwards between two commands on the same record
could break it; the search then finds *a* version recorded by the moment, not
necessarily the last one.)

Nothing here imports the write side: the functions take anything that loads records
and has a recorder and a mapper (:class:`Records`, which ``commands.app.Crm`` is), and
history takes the public representation of a record from the caller, so that exactly
what clients can read — never a secret such as a token's hash — is compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate, DomainEventProtocol
from eventsourcing.persistence import AggregateRecorder, Mapper, StoredEvent

from domain.errors import InvalidValueError
from domain.values import Removable
from projections.events import META_KEY, canonical_uuid

A = TypeVar("A", bound=Aggregate)

#: The record as clients see it, as JSON values (e.g. ``DealPublic.of(d)`` in JSON mode).
Represent = Callable[[Aggregate], Mapping[str, Any]]

#: Fields of every record that change with every event: the entry says them already.
BOOKKEEPING = frozenset({"id", "version", "created_on", "modified_on"})

MAX_HISTORY_PAGE = 1000


class Records(Protocol):
    """What replay needs of the write side's application (``commands.app.Crm``)."""

    @property
    def recorder(self) -> AggregateRecorder: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...

    def load(self, cls: type[A], record_id: UUID, version: int | None = None) -> A:
        """The record of type ``cls`` at ``version`` (None: now), or a not-found error."""
        ...


class RecordNotFoundError(LookupError):
    """Raised when a record does not exist, or did not exist yet at the moment asked for."""

    def __init__(
        self, kind: str, record_id: UUID, moment: datetime | None = None, removed: bool = False
    ) -> None:
        if removed:
            super().__init__(
                f"{kind} {record_id} was removed; its history and as-of reads still show it"
            )
        elif moment is None:
            super().__init__(f"no {kind} with id {record_id}")
        else:
            super().__init__(f"{kind} {record_id} did not exist yet at {moment.isoformat()}")
        self.kind = kind
        self.record_id = record_id
        self.moment = moment


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a record: what it did to which fields, who, when, through what."""

    version: int
    #: The event type, e.g. ``Deal.Won`` (the audit log's ``action``).
    action: str
    #: When the event was recorded (UTC).
    recorded_at: datetime
    #: When what the event records happened, where the event says so and it differs
    #: from ``recorded_at`` (an interaction logged after it took place); else None.
    occurred_at: datetime | None
    #: A user id, ``system`` (the command line), or None.
    actor: str | None
    request_id: str | None
    source: str | None
    #: ``{field: {"before": …, "after": …}}``, for every public field the event changed;
    #: nested objects by dotted path (``details.notes``). Before a record's first event
    #: every field is None.
    changes: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    #: The record's version now: later pages exist while the last entry is below it.
    head: int

    @property
    def next_after_version(self) -> int | None:
        if not self.entries or self.entries[-1].version >= self.head:
            return None
        return self.entries[-1].version


def kind_name(cls: type[Aggregate]) -> str:
    return cls.__name__.lower()


# -- versions and moments ---------------------------------------------------------------


def head_version(app: Records, record_id: UUID) -> int:
    """The record's current version: the version of its last event (0 if it has none)."""
    last = app.recorder.select_events(record_id, desc=True, limit=1)
    return last[0].originator_version if last else 0


def recorded_at(app: Records, record_id: UUID, version: int) -> datetime:
    """When the record's event at ``version`` was recorded (reads and decodes that one)."""
    (stored,) = app.recorder.select_events(record_id, gt=version - 1, lte=version)
    return _decode(app, stored).timestamp


def version_at(app: Records, cls: type[Aggregate], record_id: UUID, moment: datetime) -> int:
    """The record's version as recorded by ``moment``: that of its last event recorded
    at or before it. Binary search: about log2(version) events read, one at a time."""
    if moment.tzinfo is None:
        raise InvalidValueError("a moment needs a time zone")
    head = head_version(app, record_id)
    if head == 0:
        raise RecordNotFoundError(kind_name(cls), record_id)
    if recorded_at(app, record_id, head) <= moment:
        return head
    if recorded_at(app, record_id, 1) > moment:
        raise RecordNotFoundError(kind_name(cls), record_id, moment)
    low, high = 1, head  # recorded by the moment at ``low``; not yet at ``high``
    while high - low > 1:
        middle = (low + high) // 2
        if recorded_at(app, record_id, middle) <= moment:
            low = middle
        else:
            high = middle
    return low


def record_as_of(
    app: Records,
    cls: type[A],
    record_id: UUID,
    *,
    moment: datetime | None = None,
    version: int | None = None,
) -> A:
    """The record as it stood at ``version``, or as recorded by ``moment`` (neither: now).

    A record that did not exist yet at the moment is a :class:`RecordNotFoundError`, and
    so is a removed record read as it is now (as of a moment or a version, it shows as
    it was); a version the record has not reached (or below 1), or both a moment and a
    version, an :class:`InvalidValueError`.
    """
    if moment is not None and version is not None:
        raise InvalidValueError("give a moment (as_of) or a version, not both")
    if moment is not None:
        version = version_at(app, cls, record_id, moment)
    elif version is not None:
        if version < 1:
            raise InvalidValueError("versions start at 1")
        head = head_version(app, record_id)
        if head == 0:
            raise RecordNotFoundError(kind_name(cls), record_id)
        if version > head:
            raise InvalidValueError(
                f"{kind_name(cls)} {record_id} is at version {head}; it has no version {version}"
            )
    else:
        current = app.load(cls, record_id)
        if isinstance(current, Removable) and current.removed:
            raise RecordNotFoundError(kind_name(cls), record_id, removed=True)
        return current
    return app.load(cls, record_id, version=version)


# -- history ----------------------------------------------------------------------------


def history(
    app: Records,
    cls: type[Aggregate],
    record_id: UUID,
    represent: Represent,
    *,
    after_version: int = 0,
    limit: int = 100,
) -> HistoryPage:
    """The record's events after ``after_version``, at most ``limit`` of them, each with
    its metadata and the fields it changed.

    The changes are derived, for every kind of record and event alike, by applying the
    events one by one to the record as it stood before them (loaded from its snapshots)
    and comparing ``represent(record)`` before and after each.
    """
    if not 1 <= limit <= MAX_HISTORY_PAGE:
        raise InvalidValueError(f"limit is between 1 and {MAX_HISTORY_PAGE}")
    if after_version < 0:
        raise InvalidValueError("after_version is 0 or more")
    head = head_version(app, record_id)
    if head == 0:
        raise RecordNotFoundError(kind_name(cls), record_id)
    if after_version > head:
        raise InvalidValueError(
            f"{kind_name(cls)} {record_id} is at version {head}; "
            f"there is nothing after version {after_version}"
        )
    record: Aggregate | None = None
    before: dict[str, Any] = {}
    if after_version > 0:
        record = app.load(cls, record_id, version=after_version)
        before = flatten(represent(record))
    entries: list[HistoryEntry] = []
    for event in _events(app, record_id, after_version, after_version + limit):
        record = event.mutate(record)
        if not isinstance(record, cls):
            raise RecordNotFoundError(kind_name(cls), record_id)
        after = flatten(represent(record))
        entries.append(_entry(event, changes(before, after)))
        before = after
    return HistoryPage(entries=entries, head=head)


def iter_history(
    app: Records, cls: type[Aggregate], record_id: UUID, represent: Represent, page: int = 1000
) -> Iterator[HistoryEntry]:
    """Every entry of the record's history, a page at a time."""
    after_version = 0
    while True:
        result = history(app, cls, record_id, represent, after_version=after_version, limit=page)
        yield from result.entries
        if result.next_after_version is None:
            return
        after_version = result.next_after_version


def _events(
    app: Records, record_id: UUID, after_version: int, upto: int
) -> Iterator[CanMutateAggregate[UUID]]:
    for stored in app.recorder.select_events(record_id, gt=after_version, lte=upto):
        yield _decode(app, stored)


def _decode(app: Records, stored: StoredEvent) -> CanMutateAggregate[UUID]:
    event: DomainEventProtocol[UUID] = app.mapper.to_domain_event(stored)
    if not isinstance(event, CanMutateAggregate):
        raise TypeError(f"{stored.topic} is not an event of a record")
    return event


def flatten(representation: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects by dotted path, so that a change names the field inside them."""
    flat: dict[str, Any] = {}
    for field, value in representation.items():
        if not prefix and field in BOOKKEEPING:
            continue
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{field}."))
        else:
            flat[f"{prefix}{field}"] = value
    return flat


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before", "after"}}`` for every field whose value differs; a field
    missing on one side is None there."""
    fields = list(after) + [f for f in before if f not in after]
    return {
        field: {"before": before.get(field), "after": after.get(field)}
        for field in fields
        if before.get(field) != after.get(field)
    }


def _entry(event: CanMutateAggregate[UUID], changed: dict[str, dict[str, Any]]) -> HistoryEntry:
    meta = vars(event).get(META_KEY)
    meta = meta if isinstance(meta, dict) else {}
    occurred_at = vars(event).get("occurred_at")
    if not isinstance(occurred_at, datetime) or occurred_at == event.timestamp:
        occurred_at = None
    return HistoryEntry(
        version=event.originator_version,
        action=type(event).__qualname__,
        recorded_at=event.timestamp,
        occurred_at=occurred_at,
        actor=_actor(meta.get("actor")),
        request_id=meta.get("request_id"),
        source=meta.get("source"),
        changes=changed,
    )


def _actor(actor: str | None) -> str | None:
    """User ids as canonical UUIDs (as in the audit log); ``system`` as it is."""
    if actor is not None and len(actor) == 32:
        return canonical_uuid(actor)
    return actor
