"""What every route does after parsing: dispatch the command, shape the reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from fastapi import Body, Depends, Query, Response

from api.schemas import HistoryPagePublic, public_json
from commands.app import Crm
from commands.context import Context, Payload, Receipt, Removal, UtcDatetime
from commands.handlers import execute
from domain.errors import InvalidValueError
from domain.ownership import check_readable
from domain.roles import Authority
from replay.records import MAX_HISTORY_PAGE, history, record_as_of

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


@dataclass(frozen=True)
class PointInTime:
    """A record as it stood at a moment (as recorded by then) or at a version; neither: now."""

    moment: datetime | None = None
    version: int | None = None


def point_in_time(
    as_of: Annotated[
        UtcDatetime | None,
        Query(description="the record as recorded by this moment (with a time zone)"),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2**62, description="the record at this version")
    ] = None,
) -> PointInTime:
    if as_of is not None and version is not None:
        raise InvalidValueError("give as_of or version, not both")
    return PointInTime(as_of, version)


PointInTimeDep = Annotated[PointInTime, Depends(point_in_time)]


def read(
    crm: Crm,
    cls: type[A],
    record_id: UUID,
    response: Response,
    actor: Authority,
    at: PointInTime | None = None,
) -> A:
    """The record now, or at ``at``, if the caller may read it; ETag is the version
    returned."""
    at = at or PointInTime()
    if at.moment is None and at.version is None:
        aggregate = record_as_of(crm, cls, record_id)
        check_readable(actor, aggregate)
    else:
        check_readable(actor, crm.load(cls, record_id))
        aggregate = record_as_of(crm, cls, record_id, moment=at.moment, version=at.version)
    response.headers["ETag"] = f'"{aggregate.version}"'
    return aggregate


@dataclass(frozen=True)
class HistoryQuery:
    after_version: int
    limit: int


def history_query(
    after_version: Annotated[
        int, Query(ge=0, le=2**62, description="cursor: `next` of the last page")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE)] = 100,
) -> HistoryQuery:
    return HistoryQuery(after_version, limit)


HistoryQueryDep = Annotated[HistoryQuery, Depends(history_query)]


def read_history(
    crm: Crm, cls: type[Aggregate], record_id: UUID, query: HistoryQuery, actor: Authority
) -> HistoryPagePublic:
    """A page of the record's events, oldest first, with field-level before/after, if
    the caller may read the record."""
    check_readable(actor, crm.load(cls, record_id))
    page = history(
        crm, cls, record_id, public_json, after_version=query.after_version, limit=query.limit
    )
    return HistoryPagePublic.of(page)


class NoFields(Payload):
    """The body of a command that its path names in full: absent, or an empty object."""


def no_fields(body: Annotated[NoFields | None, Body()] = None) -> None:
    """Refuses fields sent to a command that takes none, instead of silently ignoring
    them (``{"completed_by": ...}`` would not be recorded, whatever the client thinks)."""


NO_FIELDS = [Depends(no_fields)]


def removal_reason(
    body: Annotated[Removal | None, Body()] = None,
    reason: Annotated[
        str | None, Query(max_length=1000, description="why it is removed (or in the body)")
    ] = None,
) -> str:
    """The reason of a ``DELETE``, from the body or the query (not both)."""
    if body is not None and body.reason and reason is not None:
        raise InvalidValueError("give the reason in the body or in the query, not both")
    return reason if reason is not None else (body.reason if body is not None else "")


RemovalReasonDep = Annotated[str, Depends(removal_reason)]
