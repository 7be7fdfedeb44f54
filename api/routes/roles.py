"""Custom roles: ``POST /roles`` defines one (below the creator's level, within their own
scopes); ``GET /roles`` lists them; granting one is ``POST /users/{id}/custom-roles``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api.deps import AuthorityDep, ContextDep, CrmDep, UserDep
from api.routes.common import read, run
from api.routes.timeline import MAX_POSITION
from commands.context import Receipt
from commands.roles import CreateCustomRole, CustomRoleSpec
from domain.custom_role import CustomRole, StoredGrants

router = APIRouter()


class CustomRolePublic(BaseModel):
    id: UUID
    version: int
    created_on: datetime
    name: str
    level: int
    #: Per resource, per action, a scope (every action of every resource is named).
    grants: StoredGrants
    created_by: UUID | None

    @classmethod
    def of(cls, role: CustomRole) -> CustomRolePublic:
        return cls(
            id=role.id,
            version=role.version,
            created_on=role.created_on,
            name=role.name,
            level=role.level,
            grants=role.stored_grants,
            created_by=role.created_by,
        )


class CustomRolesPage(BaseModel):
    items: list[CustomRolePublic]
    next: str | None


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
    _: UserDep,
    after: Annotated[
        int | None,
        # The store's positions are 64-bit: a larger cursor would not fit its query.
        Query(ge=0, le=MAX_POSITION - 1, description="cursor: `next` of the last page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CustomRolesPage:
    """Every custom role, in the order they were defined."""
    recorder = crm.recorder
    assert isinstance(recorder, ApplicationRecorder)
    notifications = recorder.select_notifications(
        (after or 0) + 1, limit, topics=[get_topic(CustomRole.Created)]
    )
    items = [
        CustomRolePublic.of(crm.load(CustomRole, UUID(str(n.originator_id)))) for n in notifications
    ]
    more = len(notifications) == limit
    return CustomRolesPage(items=items, next=str(notifications[-1].id) if more else None)


@router.get("/{role_id}")
def get_custom_role(
    role_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response
) -> CustomRolePublic:
    return CustomRolePublic.of(read(crm, CustomRole, role_id, response, actor))
