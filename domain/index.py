"""Uniqueness through index aggregates.

The id of a :class:`UniqueKey` derives from its scope and key alone (for contacts'
addresses, with a secret of the store that every writer reads), so two writers
claiming the same key collide on the same aggregate and version in the store:
one commits, the other gets a conflict. Saved in the same ``save()`` as the record
that holds the key (eventsourcing's contentmanagement ``Slug``). The id is a uuid5
(:func:`domain.values.key_id`), except for contacts' e-mail addresses, whose id is
keyed with a secret of the store (:func:`domain.contact.email_key_id`) and given to
:meth:`UniqueKey.create`.

A key at a keyed id does not store its key at all: the id is all a lookup needs, and
a stored address would outlive its holders (a contact that drops an address and one
that takes it later are linked by the key's events; reading the first one's sealed
address would tell who held it after, even once that one is erased). Keys at uuid5 ids
(users' addresses, role names, contacts' addresses in stores written before keyed ids)
state their key in each event that gives them a holder, a contact's address sealed
under that contact's data key (``domain/privacy.py``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import StateConflictError
from domain.privacy import ERASED
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
    def create(cls, scope: str, holder_id: UUID | None, id: UUID) -> UniqueKey:
        """A key claimed at an id keyed elsewhere (``domain.contact.email_key_id``); its
        key is not stored (:attr:`key` is empty), the id stands for it."""
        return cls._create(cls.Claimed, id=id, scope=scope, key="", holder_id=holder_id)

    @property
    def keyed(self) -> bool:
        """Whether the key is at a keyed id, its key not stored (its empty key reads
        erased once the first holder's data key is gone: it is sealed with the claim).
        A legacy key whose holder was erased reads so too; it is never claimed again."""
        return self.key in ("", ERASED)

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
            stated = None if self.keyed else key
            self._reclaim(holder_id=holder_id, scope=self.scope, key=stated)

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
