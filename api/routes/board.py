"""The pipeline board over HTTP: the pipelines, one pipeline's board (stages in order
with their open deals and totals per currency), and the rest of a stage's deals."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import duckdb
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.cursors import decode_cursor, encode_cursor
from api.deps import AuthorityDep, DealScope
from api.reading import ReadPointDep, reader_for
from commands.errors import NotFoundError
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource, check, may
from projections import board as board_model

router = APIRouter()

BoardReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for("board"))]

Owner = Annotated[UUID | None, Query(description="only the deals this user owns")]
Currency = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z]{3}$", description="only the deals in this ISO 4217 currency"),
]


class StageSummary(BaseModel):
    stage_id: UUID
    name: str
    probability: int
    position: int


class PipelineSummary(BaseModel):
    pipeline_id: UUID
    name: str
    deals: int = Field(description="open deals")
    stages: list[StageSummary]


class PipelineList(BaseModel):
    items: list[PipelineSummary]


class CurrencyTotal(BaseModel):
    """Open deals of one currency: amounts in different currencies are never added."""

    currency: str
    deals: int
    amount: Decimal
    weighted_amount: Decimal


class BoardDeal(BaseModel):
    deal_id: UUID
    stage_id: UUID
    title: str
    amount: Decimal
    currency: str
    probability: int = Field(description="the win probability of the deal's stage, in %")
    weighted_amount: Decimal = Field(description="amount * probability / 100")
    owner_id: UUID
    account_id: UUID | None
    account_name: str | None
    contacts: int
    expected_close_date: date | None
    stage_entered_at: datetime = Field(description="when it entered its stage (or was reopened)")
    days_in_stage: int = Field(
        description="whole days from `stage_entered_at` to the board's `as_of` moment"
    )
    last_interaction_at: datetime | None = Field(
        description="the latest time a non-retracted interaction with the deal happened"
    )


class BoardStage(BaseModel):
    stage_id: UUID
    name: str
    position: int
    probability: int
    deals: int = Field(description="open deals in the stage that pass the filters")
    totals: list[CurrencyTotal]
    items: list[BoardDeal] = Field(description="the deals longest in the stage first")
    next: str | None = Field(
        description="more deals: `after` for GET /board/{pipeline_id}/stages/{stage_id}/deals"
    )


class BoardView(BaseModel):
    pipeline_id: UUID
    name: str
    as_of: datetime = Field(
        description="the moment days in stage are counted at: now, or the `as_of` asked for "
        "(now if that is in the future), or when the last event up to `as_of_position` "
        "was recorded"
    )
    deals: int
    totals: list[CurrencyTotal]
    stages: list[BoardStage]


class StageDealsPage(BaseModel):
    items: list[BoardDeal]
    next: str | None


def _deal(row: dict[str, Any]) -> BoardDeal:
    return BoardDeal(**row)


def _str(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


@router.get("")
def list_pipelines(con: BoardReader, actor: AuthorityDep, deals: DealScope) -> PipelineList:
    """Every pipeline, by name, with its stages in order and its number of open deals
    (those the caller may read)."""
    if not may(actor, Resource.PIPELINE, Action.READ, None):
        return PipelineList(items=[])
    return PipelineList(
        items=[PipelineSummary(**row) for row in board_model.pipelines(con, deals)],
    )


@router.get("/{pipeline_id}")
def get_board(
    pipeline_id: UUID,
    con: BoardReader,
    point: ReadPointDep,
    owner: Owner = None,
    currency: Currency = None,
    limit: Annotated[int, Query(ge=0, le=500, description="the most deals shown per stage")] = 25,
    *,
    actor: AuthorityDep,
    deals: DealScope,
) -> BoardView:
    """The board: stages in pipeline order, each with its totals per currency over all
    its open deals that pass the filters, and its first `limit` deals.

    With `as_of` it is the board as it stood then — as recorded by then, days in stage
    counted at that moment; a deal moved since shows in the stage it was in.

    Deals, and the totals, are those the caller may read."""
    check(actor, Resource.PIPELINE, Action.READ, None, target=pipeline_id)
    view = board_model.board(
        con,
        str(pipeline_id),
        point.moment,
        owner=_str(owner),
        owners=deals,
        currency=currency.upper() if currency else None,
        per_stage=limit,
    )
    if view is None:
        raise NotFoundError("pipeline", pipeline_id)
    stages = [
        BoardStage(
            **{key: value for key, value in stage.items() if key not in ("items", "next_after")},
            items=[_deal(row) for row in stage["items"]],
            next=None if stage["next_after"] is None else encode_cursor(stage["next_after"]),
        )
        for stage in view["stages"]
    ]
    return BoardView(**{**view, "stages": stages})


@router.get("/{pipeline_id}/stages/{stage_id}/deals")
def get_stage_deals(
    pipeline_id: UUID,
    stage_id: UUID,
    con: BoardReader,
    point: ReadPointDep,
    owner: Owner = None,
    currency: Currency = None,
    after: Annotated[str | None, Query(description="cursor: `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    *,
    actor: AuthorityDep,
    deals: DealScope,
) -> StageDealsPage:
    """The open deals of one stage that the caller may read, longest in the stage first."""
    check(actor, Resource.PIPELINE, Action.READ, None, target=pipeline_id)
    position = None
    if after is not None:
        (position,) = decode_cursor(after, int)
        if position is None or not 0 <= position < 2**62:
            raise InvalidValueError("after: not a cursor this endpoint returned")
    rows = board_model.stage_deals(
        con,
        str(pipeline_id),
        str(stage_id),
        point.moment,
        owner=_str(owner),
        owners=deals,
        currency=currency.upper() if currency else None,
        after=position,
        limit=limit + 1,
    )
    if rows is None:
        raise NotFoundError("stage of that pipeline", stage_id)
    more = len(rows) > limit
    return StageDealsPage(
        items=[_deal(row) for row in rows[:limit]],
        next=encode_cursor(rows[limit - 1]["entered_position"]) if more else None,
    )
