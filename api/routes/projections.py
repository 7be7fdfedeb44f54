"""``GET /projections``: each read model's position and how far it lags the store."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import CrmDep, UserDep
from projections.host import ReadModels

router = APIRouter()


class ProjectionStatus(BaseModel):
    name: str
    position: int
    lag: int


class ProjectionsReport(BaseModel):
    head: int
    running: bool
    error: str | None
    projections: list[ProjectionStatus]


@router.get("")
def projections_status(request: Request, crm: CrmDep, _: UserDep) -> ProjectionsReport:
    reads: ReadModels = request.app.state.reads
    head = crm.position()
    return ProjectionsReport(
        head=head,
        running=reads.runner.status.running,
        error=reads.runner.status.error,
        projections=[
            ProjectionStatus(name=name, position=position, lag=max(0, head - position))
            for name, position in reads.positions().items()
        ],
    )
