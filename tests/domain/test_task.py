"""Tasks: a to-do with a due time and an assignee, optionally linked to a record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import uuid4

import pytest

from domain.errors import InvalidValueError
from domain.task import RecordKind, Task, TaskCompletedError, TaskNotCompletedError
from tests.domain.helpers import NOW, assert_no_new_events, given, only_event, refused

ASSIGNEE = uuid4()
CREATOR = uuid4()
DUE = NOW + timedelta(days=1)


def a_task() -> Task:
    return given(
        Task.create("Send the quote", assignee_id=ASSIGNEE, created_by=CREATOR, due_at=DUE)
    )


def completed(task: Task) -> Task:
    task.complete(by=ASSIGNEE)
    return given(task)


# --- create ---------------------------------------------------------------------


def test_creating_a_task_records_it() -> None:
    deal_id = uuid4()

    task = Task.create(
        " Send the quote ",
        assignee_id=ASSIGNEE,
        created_by=CREATOR,
        due_at=DUE,
        linked_kind=RecordKind.DEAL,
        linked_id=deal_id,
    )

    created = only_event(task, Task.Created)
    assert created.title == "Send the quote"
    assert (created.due_at, created.assignee_id, created.created_by) == (DUE, ASSIGNEE, CREATOR)
    assert (created.linked_kind, created.linked_id) == (RecordKind.DEAL, deal_id)
    assert not task.completed


def test_a_task_needs_neither_a_due_time_nor_a_link() -> None:
    task = Task.create("Think", assignee_id=ASSIGNEE, created_by=None)

    created = only_event(task, Task.Created)
    assert (created.due_at, created.linked_kind, created.linked_id) == (None, None, None)


def test_a_linked_record_needs_both_its_kind_and_its_id() -> None:
    with pytest.raises(InvalidValueError, match="both its kind and its id"):
        Task.create("Call", assignee_id=ASSIGNEE, created_by=CREATOR, linked_kind=RecordKind.DEAL)
    with pytest.raises(InvalidValueError, match="both its kind and its id"):
        Task.create("Call", assignee_id=ASSIGNEE, created_by=CREATOR, linked_id=uuid4())


def test_a_due_time_needs_a_time_zone() -> None:
    with pytest.raises(InvalidValueError, match="time zone"):
        Task.create(
            "Call", assignee_id=ASSIGNEE, created_by=CREATOR, due_at=DUE.replace(tzinfo=None)
        )


@pytest.mark.parametrize("title", ["", "  ", "x" * 501])
def test_a_task_title_has_one_to_five_hundred_characters(title: str) -> None:
    with pytest.raises(InvalidValueError, match="title"):
        Task.create(title, assignee_id=ASSIGNEE, created_by=CREATOR)


# --- changes while open ---------------------------------------------------------


def test_retitling_a_task_records_the_new_and_previous_title() -> None:
    task = a_task()

    task.retitle("Send the revised quote")

    retitled = only_event(task, Task.Retitled)
    assert (retitled.title, retitled.previous) == ("Send the revised quote", "Send the quote")


def test_retitling_a_task_to_its_title_records_nothing() -> None:
    task = a_task()

    task.retitle(" Send the quote ")

    assert_no_new_events(task)


def test_changing_the_due_time_records_the_new_and_previous_time() -> None:
    task = a_task()
    later = DUE + timedelta(days=2)

    task.change_due(later)

    changed = only_event(task, Task.DueChanged)
    assert (changed.due_at, changed.previous) == (later, DUE)


def test_clearing_the_due_time_records_it() -> None:
    task = a_task()

    task.change_due(None)

    changed = only_event(task, Task.DueChanged)
    assert (changed.due_at, changed.previous) == (None, DUE)


def test_a_new_due_time_needs_a_time_zone() -> None:
    task = a_task()

    with refused(InvalidValueError, task, match="time zone"):
        task.change_due(DUE.replace(tzinfo=None))


def test_reassigning_a_task_records_the_new_and_previous_assignee() -> None:
    task = a_task()
    other = uuid4()

    task.reassign(other)
    task.reassign(other)

    changed = only_event(task, Task.Reassigned)
    assert (changed.assignee_id, changed.previous) == (other, ASSIGNEE)


# --- complete and reopen --------------------------------------------------------


def test_completing_a_task_records_who_completed_it() -> None:
    task = a_task()

    task.complete(by=ASSIGNEE)

    assert only_event(task, Task.Completed).completed_by == ASSIGNEE
    assert task.completed


CHANGES: dict[str, Callable[[Task], None]] = {
    "retitle": lambda t: t.retitle("Send the revised quote"),
    "due": lambda t: t.change_due(DUE + timedelta(days=1)),
    "reassign": lambda t: t.reassign(uuid4()),
    "complete again": lambda t: t.complete(by=CREATOR),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_completed_task_refuses_changes(change: Callable[[Task], None]) -> None:
    task = completed(a_task())

    with refused(TaskCompletedError, task, match="reopen it first"):
        change(task)


def test_reopening_a_completed_task_records_who_reopened_it() -> None:
    task = completed(a_task())

    task.reopen(by=CREATOR)

    assert only_event(task, Task.Reopened).reopened_by == CREATOR
    assert not task.completed


def test_only_a_completed_task_can_be_reopened() -> None:
    task = a_task()

    with refused(TaskNotCompletedError, task, match="open already"):
        task.reopen(by=CREATOR)


def test_a_reopened_task_can_be_retitled() -> None:
    task = completed(a_task())
    task.reopen(by=CREATOR)
    given(task)

    task.retitle("Send the revised quote")

    assert only_event(task, Task.Retitled).title == "Send the revised quote"
