"""What every route does after parsing: dispatch the command, shape the reply."""

from __future__ import annotations

from typing import Annotated, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from fastapi import Body, Depends, Response

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


class NoFields(Payload):
    """The body of a command that its path names in full: absent, or an empty object."""


def no_fields(body: Annotated[NoFields | None, Body()] = None) -> None:
    """Refuses fields sent to a command that takes none, instead of silently ignoring
    them (``{"completed_by": ...}`` would not be recorded, whatever the client thinks)."""


NO_FIELDS = [Depends(no_fields)]
