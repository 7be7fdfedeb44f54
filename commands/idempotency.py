"""Idempotency: a retried command with the same key appends nothing and gets the first reply.

The record of a key is an aggregate whose id is a uuid5 of (actor, key), saved in
the same transaction as the command's own events. Two concurrent retries collide
on it in the store: one commits, the other finds the record and replays its reply.
Because it lives in the store it survives restarts.

The fingerprint is a hash of the command: whoever reads the store could confirm a
guessed e-mail address or name against it. The fingerprint of a command on a contact
(``subject_id``) is therefore sealed under that contact's data key like its personal
fields (``domain/privacy.py``): once the contact is erased it reads ``[erased]``, and a
retry with the same key can no longer be matched — it is refused as a conflict.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from commands.context import Payload
from commands.errors import ErasedRequestError, IdempotencyKeyReusedError
from domain.privacy import ERASED
from domain.values import key_id

MAX_KEY_LENGTH = 200


def fingerprint(command: Payload) -> str:
    """What identifies a request: the command's type and every field."""
    body = f"{type(command).__name__}:{command.model_dump_json()}"
    return hashlib.sha256(body.encode()).hexdigest()


def record_id(actor: str, key: str) -> UUID:
    return key_id("idempotency", f"{actor}:{key}")


class IdempotencyRecord(Aggregate):
    class Recorded(Aggregate.Created):
        class_version = 2
        actor: str
        key: str
        fingerprint: str
        target_id: UUID
        target_version: int
        created: dict[str, UUID]
        #: The contact under whose key the fingerprint is sealed (None: not sealed).
        subject_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["subject_id"] = None  # recorded before fingerprints were sealed

    @event(Recorded)
    def __init__(
        self,
        actor: str,
        key: str,
        fingerprint: str,
        target_id: UUID,
        target_version: int,
        created: dict[str, UUID],
        subject_id: UUID | None,
    ) -> None:
        self.actor = actor
        self.key = key
        self.fingerprint = fingerprint
        self.target_id = target_id
        self.target_version = target_version
        self.created = dict(created)
        self.subject_id = subject_id

    @staticmethod
    def create_id(actor: str, key: str, **_: object) -> UUID:
        return record_id(actor, key)

    def check_same_request(self, request_fingerprint: str) -> None:
        if self.fingerprint == ERASED:
            raise ErasedRequestError(
                "this Idempotency-Key was used for a request about a contact since erased: "
                "it cannot be matched any more, and nothing was done"
            )
        if request_fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError("this Idempotency-Key was used for a different request")
