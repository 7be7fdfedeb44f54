"""Uniqueness through index aggregates.

The id of a :class:`UniqueKey` is a uuid5 of its scope and key, so two writers
claiming the same key collide on the same aggregate and version in the store:
one commits, the other gets a conflict. Saved in the same ``save()`` as the record
that holds the key (eventsourcing's contentmanagement ``Slug``).
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import StateConflictError
from domain.values import key_id


class KeyTakenError(StateConflictError):
    """Raised when a unique key (an e-mail address) already belongs to another record."""


class UniqueKey(Aggregate):
    class Claimed(Aggregate.Created):
        scope: str
        key: str
        holder_id: UUID | None

    class Reclaimed(Aggregate.Event):
        holder_id: UUID

    class Released(Aggregate.Event):
        holder_id: UUID

    @event(Claimed)
    def __init__(self, scope: str, key: str, holder_id: UUID | None) -> None:
        self.scope = scope
        self.key = key
        self.holder_id = holder_id

    @staticmethod
    def create_id(scope: str, key: str, holder_id: UUID | None = None) -> UUID:
        return key_id(scope, key)

    def check_free_for(self, holder_id: UUID) -> None:
        if self.holder_id is not None and self.holder_id != holder_id:
            # The scope names the kind of holder first: "contact-emails" -> "contact".
            holder = self.scope.partition("-")[0]
            raise KeyTakenError(f"{self.key} already belongs to another {holder}")

    def claim(self, holder_id: UUID) -> None:
        self.check_free_for(holder_id)
        if self.holder_id != holder_id:
            self._reclaim(holder_id)

    @event(Reclaimed)
    def _reclaim(self, holder_id: UUID) -> None:
        self.holder_id = holder_id

    def release(self, holder_id: UUID) -> None:
        if self.holder_id == holder_id:
            self._release(holder_id)

    @event(Released)
    def _release(self, holder_id: UUID) -> None:
        self.holder_id = None
