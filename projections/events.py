"""Stored events as the read side sees them: decoded straight from the stored JSON.

The read side never builds domain objects: that costs more than everything else a
projector does. ``orjson`` parses the stored state, and the transcoding wrappers
(``{"_type_": "uuid_hex", "_data_": ...}``) are replaced by plain JSON values that
DuckDB casts in SQL: UUIDs as canonical strings, decimals and datetimes as strings.
Fields are read with ``event.data["name"]``: a missing field raises, so a change of
an event's schema stops the projector loudly instead of projecting ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import orjson

META_KEY = "_meta"

#: The events that remove a record for good: it leaves every current-state read model
#: (the audit log keeps every row and adds one for the removal).
#: An erased contact (GDPR) leaves them too: its personal fields read as erased from
#: then on (``domain/privacy.py``), and what was projected of them goes with it.
REMOVED = ("Account.Removed", "Contact.Removed", "Contact.Erased", "Deal.Removed")
#: ``REMOVED`` as an SQL list, for ``name IN (...)`` in the bulk paths.
REMOVED_SQL = ", ".join(f"'{name}'" for name in REMOVED)


class StoredNotification(Protocol):
    """What a recorder's ``select_notifications`` returns."""

    @property
    def id(self) -> int: ...
    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    """One stored event at its global position."""

    position: int
    aggregate_id: str
    version: int
    name: str
    recorded_at: str
    actor: str | None
    request_id: str | None
    source: str | None
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """The aggregate kind in lower case: ``Deal.Opened`` -> ``deal``."""
        return self.name.split(".", 1)[0].lower()

    @property
    def action(self) -> str:
        return self.name.split(".", 1)[1]


def canonical_uuid(hex32: str) -> str:
    h = hex32
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _plain(value: Any) -> Any:
    """A decoded JSON value without transcoding wrappers (called for containers only:
    most values are plain strings and numbers, and a call per value is what costs)."""
    if type(value) is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            data = value["_data_"]
            if value["_type_"] == "uuid_hex":
                return f"{data[:8]}-{data[8:12]}-{data[12:16]}-{data[16:20]}-{data[20:]}"
            return _plain(data) if type(data) in _CONTAINERS else data
        return {k: _plain(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) if type(v) in _CONTAINERS else v for v in value]
    return value


#: What orjson decodes JSON objects and arrays to (exactly these types, no subclasses).
_CONTAINERS = frozenset({dict, list})


def _actor(actor: str | None) -> str | None:
    """User ids as canonical UUIDs, like every other id; ``system`` stays as it is."""
    if actor is not None and len(actor) == 32:
        return canonical_uuid(actor)
    return actor


def topic_name(topic: str) -> str:
    """``domain.deal:Deal.Opened`` -> ``Deal.Opened``."""
    name = _TOPIC_NAMES.get(topic)
    if name is None:
        name = _TOPIC_NAMES[topic] = topic.rpartition(":")[2]
    return name


#: Topic -> event name; a store has a few dozen topics, decoded millions of times.
_TOPIC_NAMES: dict[str, str] = {}


def decode(notification: StoredNotification) -> Recorded:
    state = orjson.loads(notification.state)
    meta = state.pop(META_KEY, None) or {}
    timestamp = state.pop("timestamp")
    state.pop("originator_topic", None)
    state.pop("class_version", None)  # the library's bookkeeping, not the record's data
    for key, value in state.items():
        if type(value) in _CONTAINERS:
            state[key] = _plain(value)
    originator_id = notification.originator_id
    return Recorded(
        position=notification.id,
        aggregate_id=str(originator_id)
        if isinstance(originator_id, UUID)
        else canonical_uuid(originator_id.replace("-", "")),
        version=notification.originator_version,
        name=topic_name(notification.topic),
        recorded_at=timestamp["_data_"],
        actor=_actor(meta.get("actor")),
        request_id=meta.get("request_id"),
        source=meta.get("source"),
        data=state,
    )


def decode_all(notifications: Iterable[StoredNotification]) -> Iterator[Recorded]:
    return map(decode, notifications)
