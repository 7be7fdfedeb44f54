"""What every handler receives besides its command, and what every command returns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from commands.persistence import Meta
from domain.permissions import Action, Resource, check
from domain.roles import Authority

Permit = tuple[Resource, Action]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the range UTC can hold (years 1-9999)") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A moment with a time zone, normalised to UTC; refused if UTC cannot hold it."""


class Payload(BaseModel):
    """Base of every command and command body: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    #: What the permission table must allow for this command, checked against the
    #: owner of every record it touches (:func:`authorize`); None for the commands on
    #: users, which the level rules of ``domain/roles.py`` govern instead. Declared by
    #: every command (``commands.handlers.PERMITS`` gathers them); a body has none.
    PERMIT: ClassVar[Permit | None]


class Removal(Payload):
    """Why a record is removed for good (optional)."""

    reason: str = Field(default="", max_length=1000)


@dataclass(frozen=True)
class Context:
    """Who acts, through what, and under which guarantees (expected version, idempotency)."""

    actor: Authority
    source: str = "api"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str | None = None
    expected_version: int | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Set by an import: every event written is tagged with the batch (``_meta``).
    import_batch: str | None = None

    @property
    def meta(self) -> Meta:
        actor = (
            self.actor.user_id.hex
            if self.actor.user_id
            else ("system" if self.actor.is_system else None)
        )
        return Meta(
            actor=actor,
            request_id=self.request_id,
            source=self.source,
            idempotency_key=self.idempotency_key,
            import_batch=self.import_batch,
        )


@dataclass
class Decision:
    """What a handler decided: the record the command is about, other records changed
    in the same transaction, the ids it created, and values shown once (never stored)."""

    target: Aggregate
    others: Sequence[Aggregate] = ()
    created: dict[str, UUID] = field(default_factory=dict)
    shown_once: dict[str, Any] = field(default_factory=dict)


class Receipt(BaseModel):
    """The reply to every command."""

    id: UUID
    version: int
    position: int
    created: dict[str, UUID] = {}
    replayed: bool = False
    shown_once: dict[str, Any] = {}


def authorize(cmd: Payload, ctx: Context, owner_id: UUID | None, target: UUID | None) -> None:
    """Refuse (:class:`domain.permissions.DeniedError`) unless the table lets the actor do
    ``cmd``'s action to a record of its resource owned by ``owner_id``."""
    permit = type(cmd).PERMIT
    if permit is None:
        raise TypeError(f"{type(cmd).__name__} is not governed by the permission table")
    check(ctx.actor, permit[0], permit[1], owner_id, target)
