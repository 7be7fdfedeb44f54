"""How events are stored: JSON with explicit transcodings, and a metadata envelope.

Stored state of every event is the JSON of its fields plus ``"_meta"``: who did it
(actor), the request id, the source (api, cli, import), the idempotency key and, for
events written by an import, the import batch.
The event's own ``timestamp`` is the UTC time it was recorded.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import Enum
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import (
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic

from domain.contact import ErasureBasis, LifecycleStage
from domain.deal import DealStatus
from domain.errors import InvalidValueError
from domain.interaction import CallOutcome, InteractionKind
from domain.permissions import Action, Resource, Scope
from domain.pipeline import Stage
from domain.roles import Role
from domain.task import RecordKind
from domain.values import Direction

META_KEY = "_meta"


@dataclass(frozen=True)
class Meta:
    """Who, why and through what an event was written."""

    actor: str | None
    request_id: str
    source: str
    idempotency_key: str | None = None
    #: The import batch that wrote the event (``crm import``); absent from other events.
    import_batch: str | None = None

    def stored(self) -> dict[str, Any]:
        """The ``_meta`` of a stored event: every field, ``import_batch`` only when set."""
        return dict(self._stored)

    @cached_property
    def _stored(self) -> dict[str, Any]:
        # Once per Meta, not once per event: an import saves thousands with one.
        fields = asdict(self)
        if fields["import_batch"] is None:
            del fields["import_batch"]
        return fields

    @classmethod
    def of(cls, domain_event: object) -> Meta | None:
        """The metadata a stored event was written with (None for events not yet saved)."""
        raw = vars(domain_event).get(META_KEY)
        return cls(**raw) if isinstance(raw, dict) else None


_current_meta: ContextVar[Meta | None] = ContextVar("crm_event_meta", default=None)


class CrmMapper(Mapper[UUID]):
    """Adds the metadata envelope on the way in and keeps it on the way out."""

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        meta = _current_meta.get()
        if meta is None and not isinstance(domain_event, Snapshot):
            raise RuntimeError("events are saved inside save_meta(...), with their metadata")
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        if meta is not None:  # a snapshot is not an event of the history: no metadata
            event_state[META_KEY] = meta.stored()
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=self.transcoder.encode(event_state),
        )


class DatetimeAsUTC(Transcoding):
    """Datetimes are stored in UTC; a naive datetime is a programming error."""

    type = datetime
    name = "datetime_iso"

    def encode(self, obj: datetime) -> str:
        if obj.tzinfo is None:
            raise ValueError(f"naive datetime {obj!r} cannot be stored; give it a time zone")
        try:
            return obj.astimezone(UTC).isoformat()
        except OverflowError:
            raise InvalidValueError(f"{obj.isoformat()} is outside what UTC can hold") from None

    def decode(self, data: str) -> datetime:
        return datetime.fromisoformat(data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class EnumAsValue(Transcoding):
    def __init__(self, enum_type: type[Enum]) -> None:
        self.type = enum_type
        self.name = f"enum:{enum_type.__name__}"

    def encode(self, obj: Enum) -> Any:
        return obj.value

    def decode(self, data: Any) -> Enum:
        decoded: Enum = self.type(data)
        return decoded


class StageAsDict(Transcoding):
    type = Stage
    name = "stage"

    def encode(self, obj: Stage) -> dict[str, Any]:
        return {"id": obj.id, "name": obj.name, "probability": obj.probability}

    def decode(self, data: dict[str, Any]) -> Stage:
        return Stage(**data)


STORED_ENUMS: tuple[type[Enum], ...] = (
    Role,
    LifecycleStage,
    ErasureBasis,
    DealStatus,
    InteractionKind,
    CallOutcome,
    Direction,
    RecordKind,
    Resource,
    Action,
    Scope,
)


def register_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(UUIDAsHex())
    transcoder.register(DecimalAsStr())
    transcoder.register(DatetimeAsUTC())
    transcoder.register(DateAsISO())
    transcoder.register(StageAsDict())
    for enum_type in STORED_ENUMS:
        transcoder.register(EnumAsValue(enum_type))


class save_meta:
    """Sets the metadata that events saved within the block are written with."""

    def __init__(self, meta: Meta) -> None:
        self.meta = meta

    def __enter__(self) -> Meta:
        self._token = _current_meta.set(self.meta)
        return self.meta

    def __exit__(self, *exc: object) -> None:
        _current_meta.reset(self._token)
