"""``POST /imports``: a batch of import rows from an integration (``commands/importing.py``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ContextDep, CrmDep
from commands.importing import Importer, SourceRow, batch_id_of

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
    # The stdlib's encoder: JSON integers of any size (orjson refuses those beyond 64 bits).
    content = json.dumps(
        {"kind": body.kind, "rows": body.rows}, sort_keys=True, default=str, separators=(",", ":")
    ).encode()
    importer = Importer(crm, ctx, batch_id_of(content), kind=body.kind, default_owner=body.owner)
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
