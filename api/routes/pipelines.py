from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.routes.common import HistoryQueryDep, PointInTimeDep, read, read_history, run
from api.schemas import HistoryPagePublic, PipelinePublic
from commands.context import Receipt
from commands.pipelines import (
    AddStage,
    ChangeStage,
    CreatePipeline,
    NewStage,
    PipelineRename,
    RenamePipeline,
    ReorderStages,
    StageChanges,
    StageOrder,
)
from domain.pipeline import Pipeline

router = APIRouter()


@router.post("", status_code=201)
def create_pipeline(
    body: CreatePipeline, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, body, ctx, response, created="/pipelines")


@router.get("/{pipeline_id}")
def get_pipeline(
    pipeline_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> PipelinePublic:
    """The pipeline now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return PipelinePublic.of(read(crm, Pipeline, pipeline_id, response, actor, at))


@router.get("/{pipeline_id}/history")
def pipeline_history(
    pipeline_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the pipeline, oldest first: who, when, and each field before/after."""
    return read_history(crm, Pipeline, pipeline_id, query, actor)


@router.patch("/{pipeline_id}")
def rename_pipeline(
    pipeline_id: UUID, body: PipelineRename, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, RenamePipeline(pipeline_id=pipeline_id, **body.model_dump()), ctx, response)


@router.post("/{pipeline_id}/stages")
def add_stage(
    pipeline_id: UUID, body: NewStage, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, AddStage(pipeline_id=pipeline_id, **body.model_dump()), ctx, response)


@router.patch("/{pipeline_id}/stages/{stage_id}")
def change_stage(
    pipeline_id: UUID,
    stage_id: UUID,
    body: StageChanges,
    crm: CrmDep,
    ctx: ContextDep,
    response: Response,
) -> Receipt:
    command = ChangeStage(pipeline_id=pipeline_id, stage_id=stage_id, **body.model_dump())
    return run(crm, command, ctx, response)


@router.post("/{pipeline_id}/stage-order")
def reorder_stages(
    pipeline_id: UUID, body: StageOrder, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, ReorderStages(pipeline_id=pipeline_id, **body.model_dump()), ctx, response)
