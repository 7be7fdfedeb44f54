"""Crypto-shredding: a contact's personal fields sealed inside its stored events.

Each contact (the *subject*) has a data key of its own (AES-256-GCM). The personal
fields of an event about it are taken out of the stored state (left in place as null)
and sealed together as one box, bound by its associated data to the subject and the
event's type:

    {"first_name": null, ..., "_sealed_": {"subject": "<32 hex>", "box": "<base64 of
    nonce ‖ ciphertext>"}}

Opening puts the fields back. Erasing the contact destroys its key: from then on every
opening gives the fields' erased values (:data:`PERSONAL`), typed as the fields are,
so that records still load and read models still build.

Pure: states are dicts of stored JSON values, keys are bytes; the key table is the
store's (``commands/sealing.py``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "_sealed_"
#: What an erased text field reads as.
ERASED = "[erased]"
KEY_BYTES = 32
NONCE_BYTES = 12
CONTACT_EMAIL_SCOPE = "contact-emails"

CONTACT_TOPIC = "domain.contact:Contact."
UNIQUE_KEY_CLAIMED = "domain.index:UniqueKey.Claimed"
UNIQUE_KEY_RECLAIMED = "domain.index:UniqueKey.Reclaimed"
#: The write side's record of an idempotent command (``commands/idempotency.py``).
IDEMPOTENCY_RECORDED = "commands.idempotency:IdempotencyRecord.Recorded"
#: Events about another record that may carry a contact's data, and the field naming it.
_HELD_FOR: dict[str, str] = {
    UNIQUE_KEY_CLAIMED: "holder_id",
    UNIQUE_KEY_RECLAIMED: "holder_id",
    IDEMPOTENCY_RECORDED: "subject_id",
}

_NAMES: dict[str, Any] = {"first_name": ERASED, "last_name": ERASED}
_DETAILS: dict[str, Any] = {**_NAMES, "phones": [], "job_title": None}

#: Event name -> its personal fields and the value each reads as once erased.
PERSONAL: dict[str, dict[str, Any]] = {
    "Contact.Created": {**_DETAILS, "emails": []},
    "Contact.DetailsChanged": _DETAILS,
    "Contact.EmailsChanged": {"emails": [], "previous": []},
    "Contact.Removed": {"reason": ERASED},
    "UniqueKey.Claimed": {"key": ERASED},
    "UniqueKey.Reclaimed": {"key": ERASED},
    # A hash of the command, which an e-mail address or a name can be guessed against.
    "IdempotencyRecord.Recorded": {"fingerprint": ERASED},
}


@runtime_checkable
class StateOpener(Protocol):
    """A store that opens sealed states (its recorder): what the read side's own bulk
    reads of stored rows call, as reads through the recorder do by themselves."""

    def open_states(self, items: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """The states of (topic, state) pairs as they read: opened, or erased."""
        ...


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def event_name(topic: str) -> str:
    return topic.rpartition(":")[2]


def subject_of(topic: str, originator_hex: str, state: Mapping[str, Any]) -> str | None:
    """The contact whose data the event carries (hex), or None if it carries none."""
    if topic.startswith(CONTACT_TOPIC):
        return originator_hex if event_name(topic) in PERSONAL else None
    field = _HELD_FOR.get(topic)
    if field is None:
        return None
    if topic != IDEMPOTENCY_RECORDED:  # an index key's event
        if state.get("scope") != CONTACT_EMAIL_SCOPE:
            return None  # a user's e-mail key, a custom role's name: no contact's data
        if state.get("key") in ("", None):
            # A keyed e-mail key states no address (claimed: "", reclaimed: null):
            # nothing to seal. Sealed, it would reload as erased once its holder is (a
            # reclaim would even set the key to "[erased]"), unlike the key in memory.
            return None
    holder = state.get(field)
    return str(holder["_data_"]) if isinstance(holder, dict) else None


def may_carry_personal(topic: str) -> bool:
    """Cheap check on the topic alone, before any JSON is parsed."""
    return topic.startswith(CONTACT_TOPIC) or topic in _HELD_FOR


def _aad(subject: str, topic: str) -> bytes:
    return f"{UUID(subject).hex}|{event_name(topic)}".encode()


def seal(state: dict[str, Any], subject: str, topic: str, key: bytes) -> dict[str, Any]:
    """``state`` with its personal fields taken out and sealed with ``key``."""
    fields = PERSONAL[event_name(topic)]
    personal = {name: state[name] for name in fields if name in state}
    for name in personal:  # left in place, as null: opening keeps the fields' order
        state[name] = None
    nonce = os.urandom(NONCE_BYTES)
    box = nonce + AESGCM(key).encrypt(nonce, orjson.dumps(personal), _aad(subject, topic))
    state[SEALED] = {"subject": UUID(subject).hex, "box": base64.b64encode(box).decode()}
    return state


def sealed_subject(state: Mapping[str, Any]) -> str | None:
    envelope = state.get(SEALED)
    return str(envelope["subject"]) if isinstance(envelope, dict) else None


def open_sealed(state: dict[str, Any], topic: str, key: bytes | None) -> dict[str, Any]:
    """``state`` with its sealed fields back in; their erased values without a key."""
    envelope = state.pop(SEALED)
    fields = PERSONAL[event_name(topic)]
    if key is None:
        state.update({name: _fresh(value) for name, value in fields.items() if name in state})
        return state
    box = base64.b64decode(envelope["box"])
    try:
        plain = AESGCM(key).decrypt(
            box[:NONCE_BYTES], box[NONCE_BYTES:], _aad(envelope["subject"], topic)
        )
    except InvalidTag:
        raise ValueError(f"a sealed {event_name(topic)} does not open with its key") from None
    state.update(orjson.loads(plain))
    return state


def _fresh(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
