from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from api.deps import AuditScope
from api.reading import AuditReader
from projections import audit

router = APIRouter()

Kind = Literal["account", "contact", "pipeline", "deal", "interaction", "task", "user", "denial"]


class AuditEntry(BaseModel):
    position: int
    recorded_at: datetime
    actor: str | None
    action: str
    entity_kind: str
    entity_id: UUID
    version: int
    changes: dict[str, Any]
    request_id: str | None
    source: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next: str | None


@router.get("")
def audit_log(
    con: AuditReader,
    actor: Annotated[str | None, Query(max_length=64, description="user id or 'system'")] = None,
    entity_kind: Kind | None = None,
    entity_id: UUID | None = None,
    action: Annotated[str | None, Query(max_length=100, description="e.g. Deal.Won")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    after: Annotated[int | None, Query(ge=0, description="cursor: `next` of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    *,
    scope: AuditScope,
) -> AuditPage:
    """The audit log in position order: the rows caused by users within the caller's
    audit scope (system rows only with an `all` scope)."""
    rows = audit.query(
        con,
        actor=actor,
        actors=scope,
        entity_kind=entity_kind,
        entity_id=str(entity_id) if entity_id else None,
        action=action,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        after=after,
        limit=limit,
    )
    items = [AuditEntry(**row) for row in rows]
    return AuditPage(items=items, next=str(items[-1].position) if len(items) == limit else None)
