"""Who could read or change a record at a moment (``replay/access.py``): for Owners and
Auditors, the people who answer for access."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import CrmDep, UserDep
from api.schemas import RECORD_KINDS
from commands.context import UtcDatetime
from domain.roles import Role
from replay.access import AccessReport, access_as_of

router = APIRouter()

Kind = Literal["account", "contact", "pipeline", "deal", "interaction", "task", "user"]


class UserAccessPublic(BaseModel):
    user_id: UUID
    email: str
    name: str
    roles: list[Role]
    active: bool
    tokens: int = Field(description="API tokens the user held at the moment")
    could_read: bool
    could_change: bool
    reason: str | None = Field(description="why the user could not change it, if not")
    owner: bool = Field(description="owned (a task: was assigned) the record at the moment")


class AccessPublic(BaseModel):
    kind: str
    record_id: UUID
    at: datetime
    version: int | None = Field(description="the record's version then; null: not yet created")
    owner_id: UUID | None
    users: list[UserAccessPublic]

    @classmethod
    def of(cls, report: AccessReport) -> AccessPublic:
        return cls(
            kind=report.kind,
            record_id=report.record_id,
            at=report.moment,
            version=report.version,
            owner_id=report.owner_id,
            users=[UserAccessPublic(**vars(u)) for u in report.users],
        )


@router.get("/{kind}/{record_id}")
def access_at(
    kind: Kind,
    record_id: UUID,
    at: Annotated[UtcDatetime, Query(description="the moment, with a time zone")],
    crm: CrmDep,
    user: UserDep,
) -> AccessPublic:
    """Every user there was at `at`, their roles then, and whether they could read or
    change the record then, by the rules the CRM enforced (`replay/access.py`)."""
    user.authority.check_can_see_access()
    return AccessPublic.of(access_as_of(crm, RECORD_KINDS[kind], record_id, at))
