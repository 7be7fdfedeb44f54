"""``GET /timeline/{kind}/{record_id}``: a contact's, account's or deal's interactions
and changes, newest first, by when they happened or when they were logged.

A record the timeline read model has never seen is a 404 (a wrong id, or an id of
another kind). A record created a moment ago may not have reached the read model
yet: pass the ``position`` its command returned as ``min_position``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import duckdb
from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.cursors import decode_cursor, encode_cursor
from api.deps import AuthorityDep, CrmDep, InteractionScope
from api.reading import reader_for
from commands.context import UtcDatetime
from commands.errors import NotFoundError
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import InvalidValueError
from domain.ownership import check_readable
from domain.permissions import Action, Resource, visible_owners
from projections import timeline

router = APIRouter()

TimelineReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for(timeline.Timeline.name))]
RecordKind = Literal["contact", "account", "deal"]
#: Kinds of record (besides interactions) whose changes show on the timelines of the
#: records they are linked to.
LINKED_RESOURCES = {"task": Resource.TASK}
RECORD_CLASSES: dict[str, type[Aggregate]] = {
    "contact": Contact,
    "account": Account,
    "deal": Deal,
}
MAX_KINDS = 50
MAX_POSITION = 2**63 - 1


class TimelineEntry(BaseModel):
    position: int
    record_kind: str
    record_id: UUID
    category: Literal["interaction", "change"]
    kind: str
    entity_kind: str
    entity_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    actor: str | None
    summary: str
    payload: dict[str, Any]
    retracted: bool


class TimelinePage(BaseModel):
    items: list[TimelineEntry]
    next: str | None


class RemovedRecordError(NotFoundError):
    """Raised when the record was removed: its timeline is gone (its history is not)."""

    def __init__(self, kind: str, record_id: UUID) -> None:
        super().__init__(kind, record_id)
        self.args = (f"{kind} {record_id} was removed; its history still shows it",)


class UnknownRecordError(NotFoundError):
    """Raised when the timeline read model has never seen the record."""

    def __init__(self, kind: str, record_id: UUID) -> None:
        super().__init__(kind, record_id)
        self.args = (
            f"no {kind} with id {record_id} in the timeline read model; if it was just "
            "created, pass the position its command returned as min_position",
        )


def kinds_filter(values: list[str] | None) -> list[str] | None:
    """Repeated (``kinds=call&kinds=email``) or comma-separated (``kinds=call,email``)."""
    if values is None:
        return None
    kinds = [k.strip() for value in values for k in value.split(",") if k.strip()]
    if not kinds or len(kinds) > MAX_KINDS:
        raise InvalidValueError(f"kinds: give 1 to {MAX_KINDS} kinds")
    return timeline.check_kinds(kinds)


def cursor_key(after: str, tag: str) -> tuple[str, int]:
    made_for, moment, position = decode_cursor(after, str, str, int)
    if made_for != tag:
        raise InvalidValueError(f"after: this cursor was made for another order, not {tag}")
    try:
        valid = datetime.fromisoformat(moment).tzinfo is not None
    except (TypeError, ValueError):
        valid = False
    if not valid or position is None or not 0 <= position <= MAX_POSITION:
        raise InvalidValueError("after: not a cursor this endpoint returned")
    return moment, position


@router.get("/{kind}/{record_id}")
def record_timeline(
    con: TimelineReader,
    kind: Annotated[RecordKind, Path(description="contact, account or deal")],
    record_id: UUID,
    order: Annotated[
        timeline.Order,
        Query(description="`occurred`: when it happened; `logged`: when it was recorded"),
    ] = "occurred",
    oldest_first: Annotated[bool, Query(description="default: newest first")] = False,
    kinds: Annotated[
        list[str] | None,
        Query(
            description="only these: `interaction` or `change`, an interaction kind (`call`, "
            "`email`, `meeting`, `note`, `sms`) or a change's event name (`Deal.Won`); "
            "repeat the parameter or separate with commas",
        ),
    ] = None,
    since: Annotated[
        UtcDatetime | None, Query(description="from this time (of the chosen order) on")
    ] = None,
    until: Annotated[
        UtcDatetime | None,
        Query(
            description="before this time (of the chosen order): with `order=occurred`, what "
            "happened before it, whenever it was logged — unlike `as_of`, which reads the "
            "timeline as recorded by then"
        ),
    ] = None,
    include_retracted: Annotated[
        bool, Query(description="also retracted interactions (flagged `retracted`)")
    ] = False,
    after: Annotated[
        str | None, Query(max_length=1024, description="cursor: `next` of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    *,
    crm: CrmDep,
    actor: AuthorityDep,
    interactions: InteractionScope,
) -> TimelinePage:
    """The record's timeline, if the caller may read the record (as it is now). Of its
    interactions, those the caller may read; of changes to other records linked to it
    (a task linked to it), those of kinds the caller reads in full (`all`)."""
    record = crm.find(RECORD_CLASSES[kind], record_id)
    if record is not None:
        check_readable(actor, record)
    tag = f"{order}-{'asc' if oldest_first else 'desc'}"
    rows = timeline.timeline(
        con,
        kind,
        str(record_id),
        order=order,
        oldest_first=oldest_first,
        kinds=kinds_filter(kinds),
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        include_retracted=include_retracted,
        interactions_by=interactions,
        others_hidden=[
            kind
            for kind, resource in LINKED_RESOURCES.items()
            if visible_owners(actor, resource, Action.READ) is not None
        ],
        after=cursor_key(after, tag) if after is not None else None,
        limit=limit + 1,
    )
    if not rows and timeline.record_removed(con, str(record_id)):
        raise RemovedRecordError(kind, record_id)
    if not rows and not timeline.record_known(con, kind, str(record_id)):
        raise UnknownRecordError(kind, record_id)
    items = [TimelineEntry(**row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        moment = last.occurred_at if order == "occurred" else last.recorded_at
        next_cursor = encode_cursor(tag, moment.isoformat(), last.position)
    return TimelinePage(items=items, next=next_cursor)
