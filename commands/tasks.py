"""Commands on tasks."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate
from pydantic import Field

from commands.accounts import owner_or_actor
from commands.app import Crm
from commands.context import Context, Decision, Payload, UtcDatetime, authorize
from commands.loading import check_user, load_permitted, load_ref
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource
from domain.task import RecordKind, Task

LINKABLE: dict[RecordKind, type[Aggregate]] = {
    RecordKind.ACCOUNT: Account,
    RecordKind.CONTACT: Contact,
    RecordKind.DEAL: Deal,
}


class CreateTask(Payload):
    PERMIT = (Resource.TASK, Action.CREATE)
    title: str = Field(min_length=1, max_length=500)
    due_at: UtcDatetime | None = None
    assignee_id: UUID | None = Field(default=None, description="defaults to the acting user")
    linked_kind: RecordKind | None = None
    linked_id: UUID | None = None


class TaskChanges(Payload):
    title: str | None = Field(default=None, min_length=1, max_length=500)
    due_at: UtcDatetime | None = None


class UpdateTask(TaskChanges):
    PERMIT = (Resource.TASK, Action.EDIT)
    task_id: UUID


class Assignment(Payload):
    assignee_id: UUID


class AssignTask(Assignment):
    PERMIT = (Resource.TASK, Action.EDIT)
    task_id: UUID


class CompleteTask(Payload):
    PERMIT = (Resource.TASK, Action.EDIT)
    task_id: UUID


class ReopenTask(Payload):
    PERMIT = (Resource.TASK, Action.EDIT)
    task_id: UUID


def create_task(cmd: CreateTask, crm: Crm, ctx: Context) -> Decision:
    assignee_id = owner_or_actor(cmd.assignee_id, ctx)
    authorize(cmd, ctx, assignee_id, None)
    check_user(crm, assignee_id)
    if cmd.linked_kind is not None and cmd.linked_id is not None:
        load_ref(crm, LINKABLE[cmd.linked_kind], cmd.linked_id, ctx.actor)
    task = Task.create(
        title=cmd.title,
        assignee_id=assignee_id,
        created_by=ctx.actor.user_id,
        due_at=cmd.due_at,
        linked_kind=cmd.linked_kind,
        linked_id=cmd.linked_id,
    )
    return Decision(task, created={"task_id": task.id})


def update_task(cmd: UpdateTask, crm: Crm, ctx: Context) -> Decision:
    task = load_permitted(crm, Task, cmd.task_id, cmd, ctx)
    given = cmd.model_fields_set
    if "title" in given:
        if cmd.title is None:
            raise InvalidValueError("a task's title cannot be cleared")
        task.retitle(cmd.title)
    if "due_at" in given:
        task.change_due(cmd.due_at)
    return Decision(task)


def assign_task(cmd: AssignTask, crm: Crm, ctx: Context) -> Decision:
    task = load_permitted(crm, Task, cmd.task_id, cmd, ctx)
    authorize(cmd, ctx, cmd.assignee_id, task.id)  # the new assignee too
    check_user(crm, cmd.assignee_id)
    task.reassign(cmd.assignee_id)
    return Decision(task)


def complete_task(cmd: CompleteTask, crm: Crm, ctx: Context) -> Decision:
    task = load_permitted(crm, Task, cmd.task_id, cmd, ctx)
    task.complete(ctx.actor.user_id)
    return Decision(task)


def reopen_task(cmd: ReopenTask, crm: Crm, ctx: Context) -> Decision:
    task = load_permitted(crm, Task, cmd.task_id, cmd, ctx)
    task.reopen(ctx.actor.user_id)
    return Decision(task)
