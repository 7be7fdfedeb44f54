"""``POST /imports/{batch}/revert``: take back every record an import batch created."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import ContextDep, CrmDep
from commands.revert import revert_import

router = APIRouter()


class RevertReply(BaseModel):
    batch: str
    request_id: str
    #: Records the batch created, per kind.
    created: dict[str, int]
    #: Taken back by this request (retracted or removed).
    reverted: int
    #: Already taken back before (a second revert writes nothing).
    already: int
    #: Records the batch only changed: left as they are.
    changed_only: list[UUID]
    #: Position of the last compensating event (0: nothing written); read with
    #: ``min_position`` to see the read models without the batch.
    position: int


@router.post("/{batch}/revert")
def revert_batch(
    crm: CrmDep,
    ctx: ContextDep,
    batch: str = Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$"),
) -> RevertReply:
    """Remove every account, contact and deal the batch created and retract its
    interactions, by compensating events (history keeps everything). Managers and
    above. Unknown batch: 404."""
    report = revert_import(crm, batch, ctx)
    return RevertReply(
        batch=report.batch,
        request_id=report.request_id,
        created=report.created,
        reverted=report.reverted,
        already=report.already,
        changed_only=report.changed_only,
        position=report.position,
    )
