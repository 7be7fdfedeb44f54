"""The wire envelope, defined once: one stored event as one JSON message.

Every message the relay publishes is an :class:`Envelope` serialised by
:meth:`Envelope.to_json`, keyed by the aggregate id (so that the events of one
aggregate land on one partition, in order). ``envelope.schema.json`` beside this
module is its JSON Schema, for consumers written without our code.

The payload is the event's own fields as stored, decoded like the read side
decodes them (``projections/events.py``): ids as canonical UUID strings, money and
moments as strings; the metadata (actor, request id, source) and the timestamp are
fields of the envelope, not of the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import orjson

from projections.events import Recorded, StoredNotification, decode

#: The envelope format's version: a consumer can tell a newer format it does not know.
SPEC_VERSION = 1

#: Namespace of event ids: ``uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{version}")``.
EVENT_ID_NAMESPACE = UUID("5a0c3b0e-8f4c-4c1e-9d43-6a7f2f0c1e55")

SCHEMA_PATH = Path(__file__).with_name("envelope.schema.json")


def event_id(aggregate_id: str, version: int) -> str:
    """A stable id of one event: the same on every publication of it (a consumer
    recognises a duplicate by it, or by the aggregate id and version)."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}/{version}"))


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    aggregate_kind: str
    aggregate_id: str
    version: int
    position: int
    recorded_at: str
    actor: str | None
    request_id: str | None
    source: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, event: Recorded) -> Envelope:
        return cls(
            id=event_id(event.aggregate_id, event.version),
            type=event.name,
            aggregate_kind=event.kind,
            aggregate_id=event.aggregate_id,
            version=event.version,
            position=event.position,
            recorded_at=event.recorded_at,
            actor=event.actor,
            request_id=event.request_id,
            source=event.source,
            payload=event.data,
        )

    @classmethod
    def from_notification(cls, notification: StoredNotification) -> Envelope:
        return cls.of(decode(notification))

    def recorded(self) -> Recorded:
        """The event as the read side sees it (the inverse of :meth:`of`): what a
        projector fed from the topic consumes, the same as one fed from the store."""
        return Recorded(
            position=self.position,
            aggregate_id=self.aggregate_id,
            version=self.version,
            name=self.type,
            recorded_at=self.recorded_at,
            actor=self.actor,
            request_id=self.request_id,
            source=self.source,
            data=self.payload,
        )

    @property
    def key(self) -> bytes:
        """The message key: the aggregate id."""
        return self.aggregate_id.encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "id": self.id,
            "type": self.type,
            "aggregate_kind": self.aggregate_kind,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "position": self.position,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "request_id": self.request_id,
            "source": self.source,
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, message: bytes) -> Envelope:
        """An envelope read back from a message (``ValueError`` if it is not one)."""
        try:
            data = orjson.loads(message)
            if data.get("spec_version") != SPEC_VERSION:
                raise ValueError(f"not an envelope of version {SPEC_VERSION}")
            return cls(
                id=data["id"],
                type=data["type"],
                aggregate_kind=data["aggregate_kind"],
                aggregate_id=data["aggregate_id"],
                version=int(data["version"]),
                position=int(data["position"]),
                recorded_at=data["recorded_at"],
                actor=data["actor"],
                request_id=data["request_id"],
                source=data["source"],
                payload=data["payload"],
            )
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
            raise ValueError(f"not an event envelope: {error}") from None


def schema() -> dict[str, Any]:
    """The envelope's JSON Schema (``envelope.schema.json``)."""
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded
