from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.routes.common import (
    NO_FIELDS,
    HistoryQueryDep,
    PointInTimeDep,
    RemovalReasonDep,
    read,
    read_history,
    run,
)
from api.schemas import AccountPublic, HistoryPagePublic
from commands.accounts import (
    AccountChanges,
    ArchiveAccount,
    MoveAccount,
    OwnerChange,
    ParentChange,
    ReassignAccount,
    RegisterAccount,
    RemoveAccount,
    RestoreAccount,
    UpdateAccount,
)
from commands.context import Receipt
from domain.account import Account

router = APIRouter()


@router.post("", status_code=201)
def register_account(
    body: RegisterAccount, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, body, ctx, response, created="/accounts")


@router.get("/{account_id}")
def get_account(
    account_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> AccountPublic:
    """The account now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return AccountPublic.of(read(crm, Account, account_id, response, actor, at))


@router.get("/{account_id}/history")
def account_history(
    account_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the account, oldest first: who, when, and each field before/after."""
    return read_history(crm, Account, account_id, query, actor)


@router.patch("/{account_id}")
def update_account(
    account_id: UUID, body: AccountChanges, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    fields = body.model_dump(exclude_unset=True)
    return run(crm, UpdateAccount(account_id=account_id, **fields), ctx, response)


@router.post("/{account_id}/owner")
def reassign_account(
    account_id: UUID, body: OwnerChange, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, ReassignAccount(account_id=account_id, **body.model_dump()), ctx, response)


@router.post("/{account_id}/parent")
def move_account(
    account_id: UUID, body: ParentChange, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, MoveAccount(account_id=account_id, **body.model_dump()), ctx, response)


@router.post("/{account_id}/archive", dependencies=NO_FIELDS)
def archive_account(account_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, ArchiveAccount(account_id=account_id), ctx, response)


@router.post("/{account_id}/restore", dependencies=NO_FIELDS)
def restore_account(account_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, RestoreAccount(account_id=account_id), ctx, response)


@router.delete("/{account_id}")
def remove_account(
    account_id: UUID, reason: RemovalReasonDep, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Remove the account for good (Managers and above): it leaves every current view and
    later commands on it are refused; its history and as-of reads still show it."""
    return run(crm, RemoveAccount(account_id=account_id, reason=reason), ctx, response)
