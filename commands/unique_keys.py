"""Claiming and releasing the index keys that keep a value unique (a user's e-mail, a
custom role's name): :class:`domain.index.UniqueKey`, saved with the record that holds
the key."""

from __future__ import annotations

from uuid import UUID

from commands.app import Crm
from domain.index import UniqueKey
from domain.values import key_id


def claim_key(crm: Crm, scope: str, key: str, holder_id: UUID) -> UniqueKey:
    """The key ``key`` of ``scope``, claimed for ``holder_id``: the one found, or a new one.
    Refused (:class:`domain.index.KeyTakenError`) if another record holds it."""
    found = crm.find(UniqueKey, key_id(scope, key))
    if found is None:
        return UniqueKey(scope=scope, key=key, holder_id=holder_id)
    found.claim(holder_id, key)
    return found


def release_key(crm: Crm, scope: str, key: str, holder_id: UUID) -> UniqueKey | None:
    """The key ``key`` of ``scope``, let go by ``holder_id`` (None: there is no such key)."""
    found = crm.find(UniqueKey, key_id(scope, key))
    if found is not None:
        found.release(holder_id)
    return found
