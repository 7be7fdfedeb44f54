from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.routes.common import NO_FIELDS, HistoryQueryDep, PointInTimeDep, read, read_history, run
from api.schemas import HistoryPagePublic, TaskPublic
from commands.context import Receipt
from commands.tasks import (
    Assignment,
    AssignTask,
    CompleteTask,
    CreateTask,
    ReopenTask,
    TaskChanges,
    UpdateTask,
)
from domain.task import Task

router = APIRouter()


@router.post("", status_code=201)
def create_task(body: CreateTask, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, body, ctx, response, created="/tasks")


@router.get("/{task_id}")
def get_task(
    task_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> TaskPublic:
    """The task now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return TaskPublic.of(read(crm, Task, task_id, response, actor, at))


@router.get("/{task_id}/history")
def task_history(
    task_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the task, oldest first: who, when, and each field before/after."""
    return read_history(crm, Task, task_id, query, actor)


@router.patch("/{task_id}")
def update_task(
    task_id: UUID, body: TaskChanges, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    fields = body.model_dump(exclude_unset=True)
    return run(crm, UpdateTask(task_id=task_id, **fields), ctx, response)


@router.post("/{task_id}/assignee")
def assign_task(
    task_id: UUID, body: Assignment, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, AssignTask(task_id=task_id, **body.model_dump()), ctx, response)


@router.post("/{task_id}/completion", dependencies=NO_FIELDS)
def complete_task(task_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, CompleteTask(task_id=task_id), ctx, response)


@router.post("/{task_id}/reopen", dependencies=NO_FIELDS)
def reopen_task(task_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, ReopenTask(task_id=task_id), ctx, response)
