"""Response schemas: records as they stand now, straight from the event store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from pydantic import BaseModel

from domain.account import Account
from domain.contact import Contact, LifecycleStage
from domain.custom_role import CustomRole, StoredGrants
from domain.deal import Deal, DealStatus
from domain.interaction import Interaction, InteractionKind
from domain.pipeline import Pipeline
from domain.roles import Role
from domain.task import RecordKind, Task
from domain.user import User
from replay.records import HistoryPage


class RecordPublic(BaseModel):
    id: UUID
    version: int
    created_on: datetime
    modified_on: datetime

    @staticmethod
    def common(aggregate: Aggregate) -> dict[str, Any]:
        return {
            "id": aggregate.id,
            "version": aggregate.version,
            "created_on": aggregate.created_on,
            "modified_on": aggregate.modified_on,
        }


class AccountPublic(RecordPublic):
    name: str
    website: str | None
    industry: str | None
    country: str | None
    address: str | None
    owner_id: UUID
    parent_id: UUID | None
    archived: bool

    @classmethod
    def of(cls, a: Account) -> AccountPublic:
        return cls(
            **cls.common(a),
            name=a.name,
            website=a.website,
            industry=a.industry,
            country=a.country,
            address=a.address,
            owner_id=a.owner_id,
            parent_id=a.parent_id,
            archived=a.archived,
        )


class ContactPublic(RecordPublic):
    first_name: str
    last_name: str
    emails: list[str]
    phones: list[str]
    job_title: str | None
    account_id: UUID | None
    owner_id: UUID
    tags: list[str]
    lifecycle_stage: LifecycleStage

    @classmethod
    def of(cls, c: Contact) -> ContactPublic:
        return cls(
            **cls.common(c),
            first_name=c.first_name,
            last_name=c.last_name,
            emails=c.emails,
            phones=c.phones,
            job_title=c.job_title,
            account_id=c.account_id,
            owner_id=c.owner_id,
            tags=c.tags,
            lifecycle_stage=c.lifecycle_stage,
        )


class StagePublic(BaseModel):
    id: UUID
    name: str
    probability: int


class PipelinePublic(RecordPublic):
    name: str
    stages: list[StagePublic]

    @classmethod
    def of(cls, p: Pipeline) -> PipelinePublic:
        return cls(
            **cls.common(p),
            name=p.name,
            stages=[StagePublic(id=s.id, name=s.name, probability=s.probability) for s in p.stages],
        )


class DealPublic(RecordPublic):
    title: str
    account_id: UUID | None
    contact_ids: list[UUID]
    amount: Decimal
    currency: str
    pipeline_id: UUID
    stage_id: UUID
    owner_id: UUID
    expected_close_date: date | None
    status: DealStatus
    close_reason: str | None

    @classmethod
    def of(cls, d: Deal) -> DealPublic:
        return cls(
            **cls.common(d),
            title=d.title,
            account_id=d.account_id,
            contact_ids=d.contact_ids,
            amount=d.amount,
            currency=d.currency,
            pipeline_id=d.pipeline_id,
            stage_id=d.stage_id,
            owner_id=d.owner_id,
            expected_close_date=d.expected_close_date,
            status=d.status,
            close_reason=d.close_reason,
        )


class InteractionPublic(RecordPublic):
    kind: InteractionKind
    occurred_at: datetime
    contact_ids: list[UUID]
    account_id: UUID | None
    deal_id: UUID | None
    logged_by: UUID | None
    details: dict[str, Any]
    retracted: bool
    retraction_reason: str | None

    @classmethod
    def of(cls, i: Interaction) -> InteractionPublic:
        return cls(
            **cls.common(i),
            kind=i.kind,
            occurred_at=i.occurred_at,
            contact_ids=i.contact_ids,
            account_id=i.account_id,
            deal_id=i.deal_id,
            logged_by=i.logged_by,
            details=i.details,
            retracted=i.retracted,
            retraction_reason=i.retraction_reason,
        )


class TaskPublic(RecordPublic):
    title: str
    due_at: datetime | None
    assignee_id: UUID
    linked_kind: RecordKind | None
    linked_id: UUID | None
    created_by: UUID | None
    completed: bool

    @classmethod
    def of(cls, t: Task) -> TaskPublic:
        return cls(
            **cls.common(t),
            title=t.title,
            due_at=t.due_at,
            assignee_id=t.assignee_id,
            linked_kind=t.linked_kind,
            linked_id=t.linked_id,
            created_by=t.created_by,
            completed=t.completed,
        )


class UserPublic(RecordPublic):
    email: str
    name: str
    roles: list[Role]
    active: bool
    token_ids: list[UUID]
    #: Whom the user reports to (null: nobody).
    manager_id: UUID | None
    #: The custom roles held (``GET /roles/{id}``).
    custom_role_ids: list[UUID] = []

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(
            **cls.common(u),
            email=u.email,
            name=u.name,
            roles=u.roles,
            active=u.active,
            token_ids=[UUID(token_id) for token_id in u.tokens],
            manager_id=u.manager_id,
            custom_role_ids=[UUID(role_id) for role_id in u.custom_roles],
        )


class CustomRolePublic(RecordPublic):
    name: str
    level: int
    #: Per resource, per action, a scope (every action of every resource is named).
    grants: StoredGrants
    created_by: UUID | None
    #: Retired (``DELETE /roles/{id}``): granted no more, changed no more.
    retired: bool
    #: The users it is granted to (deactivated ones too), in the order they got it.
    holder_ids: list[UUID]

    @classmethod
    def of(cls, r: CustomRole) -> CustomRolePublic:
        return cls(
            **cls.common(r),
            name=r.name,
            level=r.level,
            grants=r.stored_grants,
            created_by=r.created_by,
            retired=r.retired,
            holder_ids=[UUID(user_id) for user_id in r.holder_ids],
        )


#: Every kind of record by its name in paths and on the command line.
RECORD_KINDS: dict[str, type[Aggregate]] = {
    "account": Account,
    "contact": Contact,
    "pipeline": Pipeline,
    "deal": Deal,
    "interaction": Interaction,
    "task": Task,
    "user": User,
}

#: How each kind of record is shown to clients.
PUBLIC: dict[type[Aggregate], Callable[[Any], RecordPublic]] = {
    Account: AccountPublic.of,
    Contact: ContactPublic.of,
    Pipeline: PipelinePublic.of,
    Deal: DealPublic.of,
    Interaction: InteractionPublic.of,
    Task: TaskPublic.of,
    User: UserPublic.of,
    CustomRole: CustomRolePublic.of,
}


def public(record: Aggregate) -> RecordPublic:
    return PUBLIC[type(record)](record)


def public_json(record: Aggregate) -> dict[str, Any]:
    """The record as clients read it, as JSON values: what its history compares."""
    return public(record).model_dump(mode="json")


class HistoryEntryPublic(BaseModel):
    version: int
    action: str
    recorded_at: datetime
    occurred_at: datetime | None
    actor: str | None
    request_id: str | None
    source: str | None
    changes: dict[str, dict[str, Any]]


class HistoryPagePublic(BaseModel):
    items: list[HistoryEntryPublic]
    #: ``after_version`` of the next page; None on the last one.
    next: str | None

    @classmethod
    def of(cls, page: HistoryPage) -> HistoryPagePublic:
        after = page.next_after_version
        return cls(
            items=[HistoryEntryPublic(**vars(entry)) for entry in page.entries],
            next=None if after is None else str(after),
        )
