"""Tasks: a to-do with a due time and an assignee, optionally linked to a record."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, StateConflictError
from domain.values import check_name


class RecordKind(Enum):
    ACCOUNT = "account"
    CONTACT = "contact"
    DEAL = "deal"


class TaskError(StateConflictError):
    """Raised when a change conflicts with the task's current state."""


class TaskCompletedError(TaskError):
    """Raised when a completed task would be changed or completed again."""


class TaskNotCompletedError(TaskError):
    """Raised when an open task would be reopened."""


def check_due(due_at: datetime | None) -> None:
    if due_at is not None and due_at.tzinfo is None:
        raise InvalidValueError("due_at needs a time zone")


class Task(Aggregate):
    class Created(Aggregate.Created):
        title: str
        due_at: datetime | None
        assignee_id: UUID
        linked_kind: RecordKind | None
        linked_id: UUID | None
        created_by: UUID | None

    class Retitled(Aggregate.Event):
        title: str
        previous: str

    class DueChanged(Aggregate.Event):
        due_at: datetime | None
        previous: datetime | None

    class Reassigned(Aggregate.Event):
        assignee_id: UUID
        previous: UUID

    class Completed(Aggregate.Event):
        completed_by: UUID | None

    class Reopened(Aggregate.Event):
        reopened_by: UUID | None

    @event(Created)
    def __init__(
        self,
        title: str,
        due_at: datetime | None,
        assignee_id: UUID,
        linked_kind: RecordKind | None,
        linked_id: UUID | None,
        created_by: UUID | None,
    ) -> None:
        self.title = title
        self.due_at = due_at
        self.assignee_id = assignee_id
        self.linked_kind = linked_kind
        self.linked_id = linked_id
        self.created_by = created_by
        self.completed = False

    @classmethod
    def create(
        cls,
        title: str,
        assignee_id: UUID,
        created_by: UUID | None,
        due_at: datetime | None = None,
        linked_kind: RecordKind | None = None,
        linked_id: UUID | None = None,
    ) -> Task:
        check_due(due_at)
        if (linked_kind is None) != (linked_id is None):
            raise InvalidValueError("a linked record needs both its kind and its id")
        return cls(
            title=check_name(title, "title", 500),
            due_at=due_at,
            assignee_id=assignee_id,
            linked_kind=linked_kind,
            linked_id=linked_id,
            created_by=created_by,
        )

    def check_open(self) -> None:
        if self.completed:
            raise TaskCompletedError("task is completed; reopen it first")

    def retitle(self, title: str) -> None:
        self.check_open()
        title = check_name(title, "title", 500)
        if title != self.title:
            self._retitle(title=title, previous=self.title)

    @event(Retitled)
    def _retitle(self, title: str, previous: str) -> None:
        self.title = title

    def change_due(self, due_at: datetime | None) -> None:
        self.check_open()
        check_due(due_at)
        if due_at != self.due_at:
            self._change_due(due_at=due_at, previous=self.due_at)

    @event(DueChanged)
    def _change_due(self, due_at: datetime | None, previous: datetime | None) -> None:
        self.due_at = due_at

    def reassign(self, assignee_id: UUID) -> None:
        self.check_open()
        if assignee_id != self.assignee_id:
            self._reassign(assignee_id=assignee_id, previous=self.assignee_id)

    @event(Reassigned)
    def _reassign(self, assignee_id: UUID, previous: UUID) -> None:
        self.assignee_id = assignee_id

    def complete(self, by: UUID | None) -> None:
        self.check_open()
        self._complete(completed_by=by)

    @event(Completed)
    def _complete(self, completed_by: UUID | None) -> None:
        self.completed = True

    def reopen(self, by: UUID | None) -> None:
        if not self.completed:
            raise TaskNotCompletedError("task is open already")
        self._reopen(reopened_by=by)

    @event(Reopened)
    def _reopen(self, reopened_by: UUID | None) -> None:
        self.completed = False
