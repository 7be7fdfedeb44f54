"""Idempotency: a retried command with the same key appends nothing and gets the first reply.

The record of a key is an aggregate whose id is a uuid5 of (actor, key), saved in
the same transaction as the command's own events. Two concurrent retries collide
on it in the store: one commits, the other finds the record and replays its reply.
Because it lives in the store it survives restarts.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from commands.context import Payload
from commands.errors import IdempotencyKeyReusedError
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
        actor: str
        key: str
        fingerprint: str
        target_id: UUID
        target_version: int
        created: dict[str, UUID]

    @event(Recorded)
    def __init__(
        self,
        actor: str,
        key: str,
        fingerprint: str,
        target_id: UUID,
        target_version: int,
        created: dict[str, UUID],
    ) -> None:
        self.actor = actor
        self.key = key
        self.fingerprint = fingerprint
        self.target_id = target_id
        self.target_version = target_version
        self.created = dict(created)

    @staticmethod
    def create_id(actor: str, key: str, **_: object) -> UUID:
        return record_id(actor, key)

    def check_same_request(self, request_fingerprint: str) -> None:
        if request_fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError("this Idempotency-Key was used for a different request")
