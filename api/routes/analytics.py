"""Reports from the analytics read model: stage transitions, funnel, win rate,
activity and forecast. Every report takes ``min_position`` (read-your-writes)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import duckdb
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel

from api.cursors import decode_cursor, encode_cursor
from api.deps import AnalyticsScope
from api.reading import reader_for
from commands.errors import NotFoundError
from domain.errors import InvalidValueError
from projections import analytics

router = APIRouter()

AnalyticsReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for("analytics"))]
Kind = Literal["call", "email", "meeting", "note", "sms"]
Limit = Annotated[int, Query(ge=1, le=1000)]
After = Annotated[
    str | None, Query(max_length=1024, description="cursor: `next` of the previous page")
]
Since = Annotated[AwareDatetime | None, Query(description="from this moment, included")]
Until = Annotated[AwareDatetime | None, Query(description="up to this moment, excluded")]
Month = Annotated[
    str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, included")
]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _page_key(after: str | None, *types: type) -> list[Any] | None:
    if after is None:
        return None
    key = decode_cursor(after, *types)
    if any(value is None for value in key):
        raise InvalidValueError("after: not a cursor this endpoint returned")
    return key


class Transition(BaseModel):
    position: int
    deal_id: UUID
    pipeline_id: UUID
    kind: Literal["opened", "moved", "won", "lost", "reopened"]
    from_stage: str | None
    from_stage_name: str | None
    to_stage: str
    to_stage_name: str | None
    at: datetime
    seconds_in_previous: float | None
    owner_id: UUID


class TransitionsPage(BaseModel):
    items: list[Transition]
    next: str | None


@router.get("/stage-transitions")
def stage_transitions(
    con: AnalyticsReader,
    deal_id: UUID | None = None,
    pipeline_id: UUID | None = None,
    owner: Annotated[UUID | None, Query(description="the owner at the time")] = None,
    since: Since = None,
    until: Until = None,
    after: After = None,
    limit: Limit = 100,
    *,
    scope: AnalyticsScope,
) -> TransitionsPage:
    """One row per change of a deal's stage or outcome, in position order: opening enters
    the first stage (``from_stage`` null), ``won``/``lost`` are outcomes, reopening leaves
    one. ``seconds_in_previous`` is the time spent where the deal was before."""
    key = _page_key(after, int)
    rows = analytics.stage_transitions(
        con,
        owners=scope,
        deal_id=str(deal_id) if deal_id else None,
        pipeline_id=str(pipeline_id) if pipeline_id else None,
        owner_id=str(owner) if owner else None,
        since=_iso(since),
        until=_iso(until),
        after=key[0] if key else None,
        limit=limit + 1,
    )
    items = [Transition(**row) for row in rows[:limit]]
    more = len(rows) > limit
    return TransitionsPage(items=items, next=encode_cursor(items[-1].position) if more else None)


class FunnelStage(BaseModel):
    stage_id: UUID
    name: str
    probability: int
    position: int
    reached: int
    conversion_to_next: float | None
    conversion_to_won: float | None


class Funnel(BaseModel):
    pipeline_id: UUID
    deals: int
    open: int
    won: int
    lost: int
    stages: list[FunnelStage]


@router.get("/funnel", responses={404: {"description": "no pipeline with that id"}})
def funnel(
    con: AnalyticsReader,
    pipeline_id: UUID,
    since: Annotated[AwareDatetime | None, Query(description="deals opened from then")] = None,
    until: Annotated[AwareDatetime | None, Query(description="deals opened before then")] = None,
    *,
    scope: AnalyticsScope,
) -> Funnel:
    """How many deals reached each stage (it or a later one; a won deal reached every
    stage), with the conversion to the next stage (for the last: to won) and to won."""
    report = analytics.funnel(
        con, str(pipeline_id), owners=scope, since=_iso(since), until=_iso(until)
    )
    if report is None:
        raise NotFoundError("pipeline", pipeline_id)
    return Funnel(**report)


class WinRate(BaseModel):
    period: str
    owner_id: UUID
    won: int
    lost: int
    closed: int
    win_rate: float
    avg_cycle_days: float


class WinRates(BaseModel):
    items: list[WinRate]


@router.get("/win-rate")
def win_rate(
    con: AnalyticsReader,
    period: Literal["month", "quarter"] = "month",
    owner: UUID | None = None,
    since: Annotated[AwareDatetime | None, Query(description="closed from then")] = None,
    until: Annotated[AwareDatetime | None, Query(description="closed before then")] = None,
    *,
    scope: AnalyticsScope,
) -> WinRates:
    """Per period of the close (UTC) and owner: deals won and lost, win rate, average
    days from opening to close. A reopened deal counts once, by its final close."""
    rows = analytics.win_rate(
        con,
        owners=scope,
        period=period,
        owner_id=str(owner) if owner else None,
        since=_iso(since),
        until=_iso(until),
    )
    return WinRates(items=[WinRate(**row) for row in rows])


class Activity(BaseModel):
    day: date
    user_id: str
    kind: Kind
    count: int


class ActivityPage(BaseModel):
    items: list[Activity]
    next: str | None


@router.get("/activity")
def activity(
    con: AnalyticsReader,
    user: Annotated[str | None, Query(max_length=64, description="user id or 'system'")] = None,
    kind: Kind | None = None,
    since: Annotated[date | None, Query(description="first day (UTC), included")] = None,
    until: Annotated[
        date | None,
        Query(
            description="last day (UTC) the interactions happened, excluded, whenever they "
            "were logged — unlike `as_of`, which counts only what was recorded by then"
        ),
    ] = None,
    after: After = None,
    limit: Limit = 100,
    *,
    scope: AnalyticsScope,
) -> ActivityPage:
    """Interactions per day they happened (UTC), user who logged them and kind;
    corrections move them, retracted ones are left out."""
    key = _page_key(after, str, str, str)
    if key is not None:
        try:
            date.fromisoformat(str(key[0]))
        except ValueError:
            raise InvalidValueError("after: not a cursor this endpoint returned") from None
    try:
        user_id = str(UUID(user)) if user and user != "system" else user
    except ValueError:
        raise InvalidValueError("user: a user id or 'system'") from None
    rows = analytics.activity(
        con,
        owners=scope,
        user_id=user_id,
        kind=kind,
        since=since,
        until=until,
        after=(str(key[0]), str(key[1]), str(key[2])) if key else None,
        limit=limit + 1,
    )
    items = [Activity(**row) for row in rows[:limit]]
    last = items[-1] if items else None
    more = len(rows) > limit and last is not None
    return ActivityPage(
        items=items,
        next=encode_cursor(last.day.isoformat(), last.user_id, last.kind)
        if more and last
        else None,
    )


class ForecastRow(BaseModel):
    month: str | None
    owner_id: UUID
    currency: str
    deals: int
    amount: Decimal
    weighted: Decimal


class Forecast(BaseModel):
    items: list[ForecastRow]


@router.get("/forecast")
def forecast(
    con: AnalyticsReader,
    owner: UUID | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    from_month: Month = None,
    to_month: Month = None,
    *,
    scope: AnalyticsScope,
) -> Forecast:
    """Open deals by expected close month (null: no date), owner and currency:
    Σ amount and Σ amount * probability / 100 (``weighted``), never across currencies."""
    rows = analytics.forecast(
        con,
        owners=scope,
        owner_id=str(owner) if owner else None,
        currency=currency,
        from_month=from_month,
        to_month=to_month,
    )
    return Forecast(items=[ForecastRow(**row) for row in rows])
