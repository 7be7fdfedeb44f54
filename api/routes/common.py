"""What every route does after parsing: dispatch the command, shape the reply."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from fastapi import Response

from commands.app import Crm
from commands.context import Context, Payload, Receipt
from commands.handlers import execute

A = TypeVar("A", bound=Aggregate)


def run(
    crm: Crm, command: Payload, ctx: Context, response: Response, created: str | None = None
) -> Receipt:
    """Execute; ETag is the record's new version; a creation answers 201 with Location."""
    receipt = execute(crm, command, ctx)
    response.headers["ETag"] = f'"{receipt.version}"'
    if receipt.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if created is not None:
        response.status_code = 201
        response.headers["Location"] = f"{created}/{receipt.id}"
    return receipt


def read(crm: Crm, cls: type[A], record_id: UUID, response: Response) -> A:
    aggregate = crm.load(cls, record_id)
    response.headers["ETag"] = f'"{aggregate.version}"'
    return aggregate
