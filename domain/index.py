"""Uniqueness through index aggregates.

The id of a :class:`UniqueKey` derives from its scope and key alone (for contacts'
addresses, with a secret of the store that every writer reads), so two writers
claiming the same key collide on the same aggregate and version in the store:
one commits, the other gets a conflict. Saved in the same ``save()`` as the record
that holds the key (eventsourcing's contentmanagement ``Slug``). The id is a uuid5
(:func:`domain.values.key_id`), except for contacts' e-mail addresses, whose id is
keyed with a secret of the store (:func:`domain.contact.email_key_id`) and given to
:meth:`UniqueKey.create`.

Each event that gives a key a holder states the key: a contact's e-mail address is
sealed under that contact's data key (``domain/privacy.py``), so the address must not
be read from the first holder's events, whose key may since have been destroyed.
"""

from __future__ import annotations

from typing import Any
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
        class_version = 2
        holder_id: UUID
        #: As ``Claimed``'s: what seals the key under the new holder's data key.
        scope: str | None
        key: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 did not repeat the key: it stays as the first claim gave it.
            state["scope"] = None
            state["key"] = None

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

    @classmethod
    def create(cls, scope: str, key: str, holder_id: UUID | None, id: UUID) -> UniqueKey:
        """A key claimed at an id derived elsewhere (a keyed id: ``domain.contact``)."""
        return cls._create(cls.Claimed, id=id, scope=scope, key=key, holder_id=holder_id)

    def check_free_for(self, holder_id: UUID, key: str) -> None:
        """Refuse unless the key is free or ``holder_id``'s; ``key`` is the key asked
        for (the one stored may read ``[erased]``: its first holder was erased)."""
        if self.holder_id is not None and self.holder_id != holder_id:
            # The scope names the kind of holder first: "contact-emails" -> "contact".
            holder = self.scope.partition("-")[0]
            raise KeyTakenError(f"{key} already belongs to another {holder}")

    def claim(self, holder_id: UUID, key: str) -> None:
        """Give the key (``key``: as asked for, the key of this id) to ``holder_id``."""
        self.check_free_for(holder_id, key)
        if self.holder_id != holder_id:
            self._reclaim(holder_id=holder_id, scope=self.scope, key=key)

    @event(Reclaimed)
    def _reclaim(self, holder_id: UUID, scope: str | None, key: str | None) -> None:
        self.holder_id = holder_id
        if key is not None:
            self.key = key

    def release(self, holder_id: UUID) -> None:
        if self.holder_id == holder_id:
            self._release(holder_id)

    @event(Released)
    def _release(self, holder_id: UUID) -> None:
        self.holder_id = None
