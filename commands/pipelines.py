"""Commands on pipelines. Shaping pipelines takes an ``all`` scope in the table (Admins
and Owners)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BeforeValidator, Field

from commands.app import Crm
from commands.context import Context, Decision, Payload, authorize
from commands.loading import load_permitted
from domain.permissions import Action, Resource
from domain.pipeline import MAX_STAGES, Pipeline


def whole_number(value: object) -> object:
    """JSON has one kind of number, and JSON Schema counts 60.0 as the integer 60; a
    fraction (60.5) or a string ("60") is still refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Probability = Annotated[
    int,
    Field(ge=0, le=100, strict=True, description="win probability, 0 to 100"),
    BeforeValidator(whole_number),
]


class StageSpec(Payload):
    name: str = Field(min_length=1, max_length=100)
    probability: Probability


class CreatePipeline(Payload):
    PERMIT = (Resource.PIPELINE, Action.CREATE)
    name: str = Field(min_length=1, max_length=200)
    stages: list[StageSpec] = Field(min_length=1, max_length=MAX_STAGES)


class PipelineRename(Payload):
    name: str = Field(min_length=1, max_length=200)


class RenamePipeline(PipelineRename):
    PERMIT = (Resource.PIPELINE, Action.EDIT)
    pipeline_id: UUID


class NewStage(StageSpec):
    position: int | None = Field(default=None, ge=0, description="0 = first; default last")


class AddStage(NewStage):
    PERMIT = (Resource.PIPELINE, Action.EDIT)
    pipeline_id: UUID


class StageChanges(Payload):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    probability: Probability | None = None


class ChangeStage(StageChanges):
    PERMIT = (Resource.PIPELINE, Action.EDIT)
    pipeline_id: UUID
    stage_id: UUID


class StageOrder(Payload):
    stage_ids: list[UUID] = Field(min_length=1, max_length=MAX_STAGES)


class ReorderStages(StageOrder):
    PERMIT = (Resource.PIPELINE, Action.EDIT)
    pipeline_id: UUID


def create_pipeline(cmd: CreatePipeline, crm: Crm, ctx: Context) -> Decision:
    authorize(cmd, ctx, None, None)  # nobody owns a pipeline: only an `all` scope reaches it
    pipeline = Pipeline.create(cmd.name, [(s.name, s.probability) for s in cmd.stages])
    return Decision(pipeline, created={"pipeline_id": pipeline.id})


def rename_pipeline(cmd: RenamePipeline, crm: Crm, ctx: Context) -> Decision:
    pipeline = load_permitted(crm, Pipeline, cmd.pipeline_id, cmd, ctx)
    pipeline.rename(cmd.name)
    return Decision(pipeline)


def add_stage(cmd: AddStage, crm: Crm, ctx: Context) -> Decision:
    pipeline = load_permitted(crm, Pipeline, cmd.pipeline_id, cmd, ctx)
    stage = pipeline.add_stage(cmd.name, cmd.probability, cmd.position)
    return Decision(pipeline, created={"stage_id": stage.id})


def change_stage(cmd: ChangeStage, crm: Crm, ctx: Context) -> Decision:
    pipeline = load_permitted(crm, Pipeline, cmd.pipeline_id, cmd, ctx)
    pipeline.check_has_stage(cmd.stage_id)
    if cmd.name is not None:
        pipeline.rename_stage(cmd.stage_id, cmd.name)
    if cmd.probability is not None:
        pipeline.reweight_stage(cmd.stage_id, cmd.probability)
    return Decision(pipeline)


def reorder_stages(cmd: ReorderStages, crm: Crm, ctx: Context) -> Decision:
    pipeline = load_permitted(crm, Pipeline, cmd.pipeline_id, cmd, ctx)
    pipeline.reorder_stages(cmd.stage_ids)
    return Decision(pipeline)
