"""The store's side of crypto-shredding (``domain/privacy.py``): the key table, and the
sealing and opening of personal fields as events pass in and out of the recorder.

Every stored event goes through the recorder's insert, whichever path wrote it (a
command, an import, a revert): sealing there, before the hash chain digests the bytes,
means no path writes a contact's personal fields in plain. The key table
(``<events table>_keys``: subject, data_key) lives in the same database; a contact's
key is made with its ``Contact.Created`` (or the first event written for a contact from
before sealing existed), and set to NULL in the very transaction that inserts its
``Contact.Erased``: an erased contact never has a live key, crash or not, and is never
given a new one (sealing for it raises :class:`ErasedSubjectError`, a conflict).

The same database holds the secrets that key the ids of the contacts' e-mail index
(``<events table>_secrets``: name, secret; ``domain.contact.email_key_id``): made at
random on first use, never changed nor destroyed (erasing a contact does not touch it).

Reads through ``select_notifications`` and ``select_events`` come back opened: plain
fields while the key lives, the erased values after. :meth:`open_states` serves the
read side's own bulk reads (``projections/bulk.py``). ``crm verify`` reads the stored
bytes itself, so the chain still covers what is stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from domain.privacy import (
    PERSONAL,
    SEALED,
    event_name,
    may_carry_personal,
    new_key,
    open_sealed,
    seal,
    sealed_subject,
    subject_of,
)

ERASED_TOPIC = "domain.contact:Contact.Erased"


class ErasedSubjectError(IntegrityError):
    """Raised when an event would be sealed for a contact whose key was destroyed."""


def keys_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_keys"


def secrets_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_secrets"


#: The length of a secret made by :meth:`KeyAccess.index_secret`.
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def _hex(originator_id: object) -> str:
    return str(originator_id).replace("-", "")


class KeyAccess:
    """What a recorder gives the sealing: its key rows, read and written in a transaction
    (``cursor`` is the recorder's own, or None for one of its own)."""

    def select_keys(self, cursor: Any, subjects: Sequence[str]) -> dict[str, bytes | None]:
        raise NotImplementedError

    def insert_keys(self, cursor: Any, keys: Mapping[str, bytes]) -> None:
        raise NotImplementedError

    def destroy_keys(self, cursor: Any, subjects: Sequence[str]) -> None:
        raise NotImplementedError

    def read_keys(self, subjects: Sequence[str]) -> dict[str, bytes | None]:
        raise NotImplementedError

    def stored_events(self, originator_id: UUID) -> Sequence[StoredEvent]:
        """The record's events as stored (sealed states left sealed)."""
        raise NotImplementedError

    def select_secret(self, cursor: Any, name: str) -> bytes | None:
        raise NotImplementedError

    def insert_secret(self, cursor: Any, name: str, secret: bytes) -> None:
        """Store ``secret`` as ``name`` unless the store has one by that name already."""
        raise NotImplementedError

    def index_secret(self, name: str) -> bytes:
        """The store's secret called ``name``: read, or if there is none yet made at
        random (an insert that does nothing if another process made one meanwhile, then
        a read, in one transaction), so every process on the store reads the same one."""
        raise NotImplementedError

    # What the recorders call

    def data_keys(self, subjects: set[str]) -> dict[str, bytes | None]:
        """The keys of ``subjects`` (hex ids); None for an erased one (the KeyRing)."""
        return self.read_keys(sorted(subjects)) if subjects else {}

    def seal_events(self, cursor: Any, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` with the personal fields of each sealed with its contact's key,
        made in ``cursor``'s transaction for a contact created here (or met first)."""
        parsed: list[tuple[int, dict[str, Any], str]] = []
        for index, stored in enumerate(events):
            if not may_carry_personal(stored.topic):
                continue
            state = orjson.loads(stored.state)
            subject = subject_of(stored.topic, _hex(stored.originator_id), state)
            if subject is not None and any(name in state for name in PERSONAL[_name(stored)]):
                parsed.append((index, state, subject))
        if not parsed:
            return list(events)
        subjects = sorted({subject for _, _, subject in parsed})
        keys = self.select_keys(cursor, subjects)
        erased = [s for s in subjects if s in keys and keys[s] is None]
        if erased:
            raise ErasedSubjectError(f"contact {erased[0]} was erased")
        made = {s: new_key() for s in subjects if s not in keys}
        if made:
            self.insert_keys(cursor, made)
            keys.update(made)
        sealed = list(events)
        for index, state, subject in parsed:
            stored = events[index]
            key = keys[subject]
            assert key is not None
            sealed[index] = StoredEvent(
                originator_id=stored.originator_id,
                originator_version=stored.originator_version,
                topic=stored.topic,
                state=orjson.dumps(seal(state, subject, stored.topic, key)),
            )
        return sealed

    def unsealed_versions(self, contact_id: UUID) -> list[int]:
        """The versions of the contact's events that hold personal values in plain: written
        before sealing existed, they outlive its key (an empty value holds nothing)."""
        versions = []
        for stored in self.stored_events(contact_id):
            fields = PERSONAL.get(_name(stored)) if may_carry_personal(stored.topic) else None
            if not fields:
                continue
            state = orjson.loads(stored.state)
            if SEALED not in state and any(state.get(name) for name in fields):
                versions.append(stored.originator_version)
        return versions

    def shred_erased(self, cursor: Any, events: Iterable[StoredEvent]) -> None:
        """Destroy the keys of contacts erased by ``events``, in their transaction."""
        erased = sorted({_hex(e.originator_id) for e in events if e.topic == ERASED_TOPIC})
        if erased:
            self.destroy_keys(cursor, erased)

    def open_states(self, items: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """The states of (topic, state) pairs as they read: opened, or erased."""
        found: list[tuple[int, dict[str, Any], str]] = []
        for index, (topic, state) in enumerate(items):
            if may_carry_personal(topic) and b'"_sealed_"' in state:
                loaded = orjson.loads(state)
                subject = sealed_subject(loaded)
                if subject is not None:
                    found.append((index, loaded, subject))
        opened = [state for _, state in items]
        if not found:
            return opened
        keys = self.data_keys({subject for _, _, subject in found})
        for index, loaded, subject in found:
            topic = items[index][0]
            opened[index] = orjson.dumps(open_sealed(loaded, topic, keys.get(subject)))
        return opened

    def open_notifications(self, page: Sequence[Notification]) -> list[Notification]:
        states = self.open_states([(n.topic, bytes(n.state)) for n in page])
        return [
            n
            if state is n.state
            else Notification(
                id=n.id,
                originator_id=n.originator_id,
                originator_version=n.originator_version,
                topic=n.topic,
                state=state,
            )
            for n, state in zip(page, states, strict=True)
        ]

    def open_events(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        states = self.open_states([(e.topic, bytes(e.state)) for e in events])
        return [
            e
            if state is e.state
            else StoredEvent(
                originator_id=e.originator_id,
                originator_version=e.originator_version,
                topic=e.topic,
                state=state,
            )
            for e, state in zip(events, states, strict=True)
        ]


def _name(stored: StoredEvent) -> str:
    return event_name(stored.topic)
