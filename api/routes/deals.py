from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.routes.common import (
    HistoryQueryDep,
    PointInTimeDep,
    RemovalReasonDep,
    read,
    read_history,
    run,
)
from api.schemas import DealPublic, HistoryPagePublic
from commands.context import Receipt
from commands.deals import (
    DealChanges,
    DealOwnerChange,
    LoseDeal,
    MoveDeal,
    OpenDeal,
    Outcome,
    ReassignDeal,
    RemoveDeal,
    ReopenDeal,
    Reopening,
    StageMove,
    UpdateDeal,
    WinDeal,
)
from domain.deal import Deal

router = APIRouter()


@router.post("", status_code=201)
def open_deal(body: OpenDeal, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created="/deals")


@router.get("/{deal_id}")
def get_deal(
    deal_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> DealPublic:
    """The deal now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return DealPublic.of(read(crm, Deal, deal_id, response, actor, at))


@router.get("/{deal_id}/history")
def deal_history(
    deal_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the deal, oldest first: who, when, and each field before/after."""
    return read_history(crm, Deal, deal_id, query, actor)


@router.patch("/{deal_id}")
def update_deal(
    deal_id: UUID, body: DealChanges, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    fields = body.model_dump(exclude_unset=True)
    return run(crm, UpdateDeal(deal_id=deal_id, **fields), ctx, response)


@router.post("/{deal_id}/stage-changes")
def move_deal(
    deal_id: UUID, body: StageMove, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, MoveDeal(deal_id=deal_id, **body.model_dump()), ctx, response)


@router.post("/{deal_id}/owner")
def reassign_deal(
    deal_id: UUID, body: DealOwnerChange, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, ReassignDeal(deal_id=deal_id, **body.model_dump()), ctx, response)


@router.post("/{deal_id}/won")
def win_deal(
    deal_id: UUID, body: Outcome, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, WinDeal(deal_id=deal_id, **body.model_dump()), ctx, response)


@router.post("/{deal_id}/lost")
def lose_deal(
    deal_id: UUID, body: Outcome, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, LoseDeal(deal_id=deal_id, **body.model_dump()), ctx, response)


@router.post("/{deal_id}/reopen")
def reopen_deal(
    deal_id: UUID, body: Reopening, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, ReopenDeal(deal_id=deal_id, **body.model_dump()), ctx, response)


@router.delete("/{deal_id}")
def remove_deal(
    deal_id: UUID, reason: RemovalReasonDep, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Remove the deal for good (Managers and above): it leaves every current view and
    later commands on it are refused; its history and as-of reads still show it."""
    return run(crm, RemoveDeal(deal_id=deal_id, reason=reason), ctx, response)
