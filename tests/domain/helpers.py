"""Given/when/then on pure aggregates.

"Given" is an aggregate built by its public methods whose events have been
collected (:func:`given`); "when" is one public method; "then" is the events it
left pending (:func:`only_event`, :func:`new_events`) or a refusal that leaves
none (:func:`refused`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)
E = TypeVar("E")
X = TypeVar("X", bound=BaseException)

#: The logging clock of tests that need one.
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def given(aggregate: A) -> A:
    """The aggregate as its history left it: nothing pending any more."""
    aggregate.collect_events()
    return aggregate


def new_events(aggregate: Aggregate) -> list[Any]:
    """The events the "when" step left pending (and collects them)."""
    return list(aggregate.collect_events())


def event_types(aggregate: Aggregate) -> list[type[Any]]:
    return [type(event) for event in new_events(aggregate)]


def only_event(aggregate: Aggregate, event_type: type[E]) -> E:
    """The single new event, which must be of ``event_type``."""
    events = new_events(aggregate)
    assert [type(event) for event in events] == [event_type]
    event = events[0]
    assert isinstance(event, event_type)
    return event


def assert_no_new_events(*aggregates: Aggregate) -> None:
    for aggregate in aggregates:
        assert new_events(aggregate) == []


@contextmanager
def refused(
    error: type[X], *aggregates: Aggregate, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[X]]:
    """The block raises ``error`` and leaves no new event on any of ``aggregates``."""
    with pytest.raises(error, match=match) as info:
        yield info
    assert_no_new_events(*aggregates)
