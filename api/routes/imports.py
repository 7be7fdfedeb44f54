"""``POST /imports``: a batch of import rows from an integration (``commands/importing.py``);
``POST /imports/{batch}/revert``: take back every record a batch created
(``commands/revert.py``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import ContextDep, CrmDep
from commands.importing import Importer, SourceRow, rows_batch_id
from commands.revert import revert_import

#: The most rows one request takes (the body is bounded by CRM_MAX_BODY_BYTES too).
MAX_ROWS = 10_000

router = APIRouter()


class ImportBody(BaseModel):
    rows: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description="rows as in a JSON Lines import: kind, external_id and the fields",
    )
    kind: str | None = Field(default=None, description="every row is of this kind")
    owner: str | None = Field(
        default=None, description="owner (user e-mail or id) of rows that name none"
    )


class RowProblem(BaseModel):
    index: int = Field(description="the row's index in `rows`, from 0")
    reason: str


class ImportResult(BaseModel):
    batch_id: str
    written: int
    skipped: int = Field(description="rows whose records were imported before")
    refused: int
    events: int
    position: int = Field(description="global position of the last event written")
    errors: list[RowProblem]


@router.post("")
def import_rows(body: ImportBody, crm: CrmDep, ctx: ContextDep) -> ImportResult:
    """Import rows of accounts, contacts, deals and interactions. Good rows are written
    (one batch, tagged with its id), bad rows are listed with their index and reason
    and write nothing; sending the same rows again writes nothing new."""
    batch_id = rows_batch_id(body.rows, body.kind)
    importer = Importer(crm, ctx, batch_id, kind=body.kind, default_owner=body.owner)
    report = importer.run(SourceRow(index, row) for index, row in enumerate(body.rows))
    return ImportResult(
        batch_id=report.batch_id,
        written=report.written,
        skipped=report.skipped,
        refused=len(report.refused),
        events=report.events,
        position=report.position or crm.position(),
        errors=[RowProblem(index=e.line, reason=e.reason) for e in report.refused],
    )


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
