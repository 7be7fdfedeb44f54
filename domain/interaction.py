"""Interactions: calls, e-mails, meetings, notes and SMS logged against contacts,
accounts and deals. Each keeps the time it happened, which may be earlier than
when it was logged. Nothing is deleted: a later event corrects or retracts it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, StateConflictError
from domain.values import Direction

#: How far ahead of the logging clock a past interaction may claim to have happened.
CLOCK_SKEW = timedelta(minutes=5)
MAX_TEXT_LENGTH = 100_000


class InteractionKind(Enum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    NOTE = "note"
    SMS = "sms"


class CallOutcome(Enum):
    CONNECTED = "connected"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    WRONG_NUMBER = "wrong_number"


class InteractionError(StateConflictError):
    """Raised when a change conflicts with the interaction's current state."""


class InteractionRetractedError(InteractionError):
    """Raised when a retracted interaction would be corrected or retracted again."""


COMMON_FIELDS = frozenset({"occurred_at", "contact_ids", "account_id", "deal_id"})
DETAIL_FIELDS: dict[InteractionKind, frozenset[str]] = {
    InteractionKind.CALL: frozenset({"direction", "duration_seconds", "outcome", "notes"}),
    InteractionKind.EMAIL: frozenset({"direction", "subject", "body"}),
    InteractionKind.MEETING: frozenset({"ends_at", "title", "attendees", "notes"}),
    InteractionKind.NOTE: frozenset({"body"}),
    InteractionKind.SMS: frozenset({"direction", "body"}),
}


def check_text(value: str, what: str) -> None:
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidValueError(f"{what} has at most {MAX_TEXT_LENGTH} characters")


def check_details(kind: InteractionKind, occurred_at: datetime, details: Mapping[str, Any]) -> None:
    if occurred_at.tzinfo is None:
        raise InvalidValueError("occurred_at needs a time zone")
    duration = details.get("duration_seconds")
    if duration is not None and not 0 <= duration <= 7 * 24 * 3600:
        raise InvalidValueError("a call lasts between 0 seconds and a week")
    ends_at = details.get("ends_at")
    if ends_at is not None and (ends_at.tzinfo is None or ends_at < occurred_at):
        raise InvalidValueError("a meeting ends, with a time zone, no earlier than it starts")
    for field in ("notes", "subject", "body", "title"):
        if isinstance(details.get(field), str):
            check_text(details[field], field)


def check_not_in_future(kind: InteractionKind, occurred_at: datetime, now: datetime) -> None:
    # Meetings may be logged ahead of time; everything else has already happened.
    if kind is not InteractionKind.MEETING and occurred_at > now + CLOCK_SKEW:
        raise InvalidValueError(f"a {kind.value} cannot have happened in the future")


class Interaction(Aggregate):
    class Logged(Aggregate.Created):
        occurred_at: datetime
        contact_ids: list[UUID]
        account_id: UUID | None
        deal_id: UUID | None
        logged_by: UUID | None

    class CallLogged(Logged):
        direction: Direction
        duration_seconds: int
        outcome: CallOutcome
        notes: str

        def apply(self, aggregate: Interaction) -> None:
            aggregate.kind = InteractionKind.CALL
            aggregate.details = {
                "direction": self.direction,
                "duration_seconds": self.duration_seconds,
                "outcome": self.outcome,
                "notes": self.notes,
            }

    class EmailLogged(Logged):
        direction: Direction
        subject: str
        body: str

        def apply(self, aggregate: Interaction) -> None:
            aggregate.kind = InteractionKind.EMAIL
            aggregate.details = {
                "direction": self.direction,
                "subject": self.subject,
                "body": self.body,
            }

    class MeetingLogged(Logged):
        ends_at: datetime
        title: str
        attendees: list[str]
        notes: str

        def apply(self, aggregate: Interaction) -> None:
            aggregate.kind = InteractionKind.MEETING
            aggregate.details = {
                "ends_at": self.ends_at,
                "title": self.title,
                "attendees": list(self.attendees),
                "notes": self.notes,
            }

    class NoteLogged(Logged):
        body: str

        def apply(self, aggregate: Interaction) -> None:
            aggregate.kind = InteractionKind.NOTE
            aggregate.details = {"body": self.body}

    class SmsLogged(Logged):
        direction: Direction
        body: str

        def apply(self, aggregate: Interaction) -> None:
            aggregate.kind = InteractionKind.SMS
            aggregate.details = {"direction": self.direction, "body": self.body}

    class Corrected(Aggregate.Event):
        changes: dict[str, Any]
        previous: dict[str, Any]

    class Retracted(Aggregate.Event):
        reason: str

    def __init__(
        self,
        occurred_at: datetime,
        contact_ids: list[UUID],
        account_id: UUID | None,
        deal_id: UUID | None,
        logged_by: UUID | None,
    ) -> None:
        self.occurred_at = occurred_at
        self.contact_ids = list(contact_ids)
        self.account_id = account_id
        self.deal_id = deal_id
        self.logged_by = logged_by
        self.kind = InteractionKind.NOTE
        self.details: dict[str, Any] = {}
        self.retracted = False
        self.retraction_reason: str | None = None

    @classmethod
    def log(
        cls,
        kind: InteractionKind,
        occurred_at: datetime,
        now: datetime,
        logged_by: UUID | None,
        contact_ids: list[UUID],
        account_id: UUID | None = None,
        deal_id: UUID | None = None,
        id: UUID | None = None,
        **details: Any,
    ) -> Interaction:
        """A new interaction; ``id`` is given where it must be derived (an import)."""
        if details.keys() != DETAIL_FIELDS[kind]:
            raise InvalidValueError(f"a {kind.value} has the details {sorted(DETAIL_FIELDS[kind])}")
        if not contact_ids and account_id is None and deal_id is None:
            raise InvalidValueError("an interaction is linked to a contact, an account or a deal")
        check_details(kind, occurred_at, details)
        check_not_in_future(kind, occurred_at, now)
        return cls._create(
            LOGGED_EVENTS[kind],
            id=id,
            occurred_at=occurred_at,
            contact_ids=list(dict.fromkeys(contact_ids)),
            account_id=account_id,
            deal_id=deal_id,
            logged_by=logged_by,
            **details,
        )

    def check_not_retracted(self) -> None:
        if self.retracted:
            raise InteractionRetractedError("interaction was retracted")

    def current(self, field: str) -> Any:
        return getattr(self, field) if field in COMMON_FIELDS else self.details[field]

    def correct(self, changes: Mapping[str, Any], now: datetime) -> None:
        self.check_not_retracted()
        allowed = COMMON_FIELDS | DETAIL_FIELDS[self.kind]
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidValueError(
                f"a {self.kind.value} has no field {', '.join(sorted(unknown))} to correct"
            )
        if "contact_ids" in changes:
            # As when logging: each contact once, in the order given.
            changes = {**changes, "contact_ids": list(dict.fromkeys(changes["contact_ids"]))}
        effective = {k: v for k, v in changes.items() if v != self.current(k)}
        if not effective:
            return
        occurred_at = effective.get("occurred_at", self.occurred_at)
        check_details(self.kind, occurred_at, {**self.details, **effective})
        check_not_in_future(self.kind, occurred_at, now)
        contact_ids = effective.get("contact_ids", self.contact_ids)
        if (
            not contact_ids
            and effective.get("account_id", self.account_id) is None
            and (effective.get("deal_id", self.deal_id) is None)
        ):
            raise InvalidValueError("an interaction is linked to a contact, an account or a deal")
        previous = {k: self.current(k) for k in effective}
        self._correct(changes=dict(effective), previous=previous)

    @event(Corrected)
    def _correct(self, changes: dict[str, Any], previous: dict[str, Any]) -> None:
        for field, value in changes.items():
            if field in COMMON_FIELDS:
                setattr(self, field, value)
            else:
                self.details[field] = value

    def retract(self, reason: str) -> None:
        self.check_not_retracted()
        check_text(reason, "reason")
        self._retract(reason=reason.strip())

    @event(Retracted)
    def _retract(self, reason: str) -> None:
        self.retracted = True
        self.retraction_reason = reason


LOGGED_EVENTS: dict[InteractionKind, type[Interaction.Logged]] = {
    InteractionKind.CALL: Interaction.CallLogged,
    InteractionKind.EMAIL: Interaction.EmailLogged,
    InteractionKind.MEETING: Interaction.MeetingLogged,
    InteractionKind.NOTE: Interaction.NoteLogged,
    InteractionKind.SMS: Interaction.SmsLogged,
}
