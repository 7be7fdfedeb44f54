"""Refused attempts, kept for auditors: one small aggregate per refusal, so recording
one never contends with anything else."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event


class Denial(Aggregate):
    """Someone was refused something (403). Who and when are the event's metadata and
    timestamp (the actor, the request id); the event says what was attempted. It holds no
    token and no personal data: ids, names of routes and of the table's rows, and the
    refusal's reason."""

    class Recorded(Aggregate.Created):
        #: The permission table's row and column (None for refusals by the level rules,
        #: such as granting a role).
        resource: str | None
        action: str | None
        #: The record the attempt was about, when known.
        target_id: UUID | None
        #: What was asked, as the route's template: ``POST /deals/{deal_id}/stage-changes``.
        operation: str
        #: The kind of refusal (``DeniedError``, ``EscalationError``, ...) and its message.
        refusal: str
        reason: str

    @event(Recorded)
    def __init__(
        self,
        resource: str | None,
        action: str | None,
        target_id: UUID | None,
        operation: str,
        refusal: str,
        reason: str,
    ) -> None:
        self.resource = resource
        self.action = action
        self.target_id = target_id
        self.operation = operation
        self.refusal = refusal
        self.reason = reason
