"""Custom roles: ``POST /roles`` defines one (below the creator's level, within their own
scopes), ``PATCH /roles/{id}`` edits it under the same bounds, ``DELETE /roles/{id}``
retires it once no active user holds it; granting one is ``POST /users/{id}/custom-roles``.

Who administers users (Admins, Owners) or reads everything (Auditors) sees every role;
anyone else sees the roles they hold, defined, or could grant."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api.deps import AuthorityDep, ContextDep, CrmDep, UserDep
from api.routes.common import HistoryQueryDep, RemovalReasonDep, read_history, run
from api.routes.timeline import MAX_POSITION
from api.schemas import CustomRolePublic, HistoryPagePublic
from commands.app import Crm
from commands.context import Receipt
from commands.roles import (
    CreateCustomRole,
    CustomRoleChanges,
    CustomRoleSpec,
    EditCustomRole,
    RetireCustomRole,
)
from domain.custom_role import CustomRole
from domain.errors import NotPermittedError
from domain.roles import Authority
from domain.user import User

router = APIRouter()


class CustomRolesPage(BaseModel):
    items: list[CustomRolePublic]
    next: str | None


def readable_role(crm: Crm, role_id: UUID, actor: Authority, user: User) -> CustomRole:
    """The role, if the caller may see it (403 otherwise)."""
    role = crm.load(CustomRole, role_id)
    if not role.readable_by(actor, user.custom_roles):
        raise NotPermittedError(
            "custom roles are shown to who administers users, and to who holds, defined "
            "or could grant them"
        )
    return role


@router.post("", status_code=201)
def create_custom_role(
    body: CustomRoleSpec, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Define a custom role. Its level must lie strictly below your own, and none of its
    grants may reach further than your own scope for the same resource and action. It
    protects its holders like a built-in role of its level; it gives no power to grant."""
    return run(crm, CreateCustomRole(**body.model_dump()), ctx, response, created="/roles")


@router.get("")
def list_custom_roles(
    crm: CrmDep,
    actor: AuthorityDep,
    user: UserDep,
    after: Annotated[
        int | None,
        # The store's positions are 64-bit: a larger cursor would not fit its query.
        Query(ge=0, le=MAX_POSITION - 1, description="cursor: `next` of the last page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_retired: Annotated[bool, Query(description="retired roles too")] = False,
) -> CustomRolesPage:
    """The custom roles you may see, in the order they were defined. A page may hold
    fewer than ``limit`` roles and still have a ``next``: follow it until it is null."""
    recorder = crm.recorder
    assert isinstance(recorder, ApplicationRecorder)
    notifications = recorder.select_notifications(
        (after or 0) + 1, limit, topics=[get_topic(CustomRole.Created)]
    )
    roles = [crm.load(CustomRole, UUID(str(n.originator_id))) for n in notifications]
    items = [
        CustomRolePublic.of(role)
        for role in roles
        if role.readable_by(actor, user.custom_roles) and (include_retired or not role.retired)
    ]
    more = len(notifications) == limit
    return CustomRolesPage(items=items, next=str(notifications[-1].id) if more else None)


@router.get("/{role_id}")
def get_custom_role(
    role_id: UUID, crm: CrmDep, actor: AuthorityDep, user: UserDep, response: Response
) -> CustomRolePublic:
    """The role as it stands now (retired ones too); ETag is its version, for ``If-Match``."""
    role = readable_role(crm, role_id, actor, user)
    response.headers["ETag"] = f'"{role.version}"'
    return CustomRolePublic.of(role)


@router.get("/{role_id}/history")
def custom_role_history(
    role_id: UUID, crm: CrmDep, actor: AuthorityDep, user: UserDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the role, oldest first (edits, grants and revocations as holders
    added and removed, its retirement): who, when, and each field before/after."""
    readable_role(crm, role_id, actor, user)
    return read_history(crm, CustomRole, role_id, query, actor)


@router.patch("/{role_id}")
def edit_custom_role(
    role_id: UUID, body: CustomRoleChanges, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Rename the role, move it to another level, or replace its grants (``If-Match``:
    only if it is still at that version). Only someone above its level whose own scopes
    cover all it grants may edit it. A new level or new grants are bounded as when it was
    defined (strictly below your level, within your scopes), take effect for every holder
    at once, and so need you to stand above every active holder."""
    fields = body.model_dump(exclude_unset=True)
    return run(crm, EditCustomRole(role_id=role_id, **fields), ctx, response)


@router.delete("/{role_id}")
def retire_custom_role(
    role_id: UUID, reason: RemovalReasonDep, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Retire the role for good: it can be granted and edited no more; it is still shown
    (``retired``), with its history. Refused (409) while an active user holds it: revoke
    it from each first (``DELETE /users/{id}/custom-roles/{role_id}``), so that every loss
    of authority is a revocation of its own, under the usual rules."""
    return run(crm, RetireCustomRole(role_id=role_id, reason=reason), ctx, response)
