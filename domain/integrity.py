"""The integrity of the event log: how each stored event is hashed and chained to the
events before it. Pure functions; the write side stores the chain with the events
(``commands/chain.py``) and replay checks it (``replay/verify.py``).

- the *digest* of an event is the SHA-256 of the event as stored — record id, version,
  topic and state bytes, each length-prefixed so none can bleed into the next;
- the *link* at a position is the SHA-256 of the previous link, the position, the
  previous position and the digest, starting from :data:`GENESIS`: it commits to the
  whole history up to it.
"""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

#: The link before the first event.
GENESIS = bytes(32)


def digest_of(originator_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """SHA-256 of one stored event, its fields length-prefixed so none can bleed into
    the next."""
    record = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
    return raw_digest(record.bytes, version, topic, state)


#: What precedes the topic in an event's digest: its version (signed) and topic length.
EVENT_HEAD = struct.Struct(">qI")
#: What precedes the state: its length.
STATE_SIZE = struct.Struct(">Q")
#: What follows the previous link in a link: the position and the previous position.
LINK_HEAD = struct.Struct(">QQ")


def raw_digest(record_id: bytes, version: int, topic: str, state: bytes) -> bytes:
    """:func:`digest_of`, the record id given as its 16 bytes."""
    topic_bytes = topic.encode()
    return hashlib.sha256(
        record_id
        + EVENT_HEAD.pack(version, len(topic_bytes))
        + topic_bytes
        + STATE_SIZE.pack(len(state))
        + state
    ).digest()


def link_of(previous_link: bytes, position: int, previous: int, digest: bytes) -> bytes:
    """The chain's link at ``position``: it commits to ``previous_link`` and so to all
    the history before."""
    return hashlib.sha256(previous_link + LINK_HEAD.pack(position, previous) + digest).digest()


def chain_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_chain"
