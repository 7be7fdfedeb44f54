"""The read side over HTTP: the dependency that hands a route a read connection to
one read model — live, once it has reached the position the client asks for
(``min_position``, read-your-writes), or as of a past moment or position (``as_of``,
``as_of_position``) — and the shared query parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import duckdb
from fastapi import Depends, Query, Request, Response

from api.deps import UserDep
from commands.app import Crm
from commands.context import UtcDatetime
from domain.errors import InvalidValueError
from projections.host import ReadModels
from replay.as_of import AsOfCache, head, position_as_of, recorded_at

#: How long a read waits for its read model to reach ``min_position``.
MAX_WAIT_SECONDS = 5.0
#: The response header that says which position an ``as_of`` read was made at.
AS_OF_POSITION_HEADER = "X-As-Of-Position"


class ReadModelUnavailableError(Exception):
    """A read model is behind the asked position, or its runner has stopped."""

    #: Seconds a client should wait before asking again (``Retry-After``).
    retry_after = 1


def read_connection(
    reads: ReadModels, projection: str, min_position: int | None
) -> duckdb.DuckDBPyConnection:
    error = reads.runner.status.error
    if error is not None:
        raise ReadModelUnavailableError(f"the read models are stopped: {error}")
    if min_position and not reads.wait_for(projection, min_position, MAX_WAIT_SECONDS):
        raise ReadModelUnavailableError(
            f"the {projection} read model is at position "
            f"{reads.store(projection).position(projection)}, not yet at {min_position}; "
            "retry shortly"
        )
    return reads.store(projection).reader()


def check_written(crm: Crm, min_position: int) -> None:
    """A position no event has yet is not one a command returned: waiting cannot help."""
    if min_position > (last := crm.position()):
        raise InvalidValueError(
            f"min_position {min_position} is beyond the store's last event (position {last}); "
            "pass the position a command returned"
        )


MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="wait (up to 5 s) until the read model has reached this position "
        "(the `position` a command returned; one beyond the store's last event is 422); "
        "ignored with `as_of` or `as_of_position`",
    ),
]

AsOfMoment = Annotated[
    UtcDatetime | None,
    Query(
        description="the read model **as recorded by then**: built from exactly the events "
        "the store had recorded at this moment (with a time zone, e.g. "
        "`2026-09-30T23:59:59Z`). Not the same as filtering by when things happened: a "
        "call logged on 2 October about a meeting on 28 September is not in the CRM as of "
        "30 September (to filter interactions by when they happened, use `since`/`until`). "
        "A moment in the future reads as of now; one before the first event reads empty "
        "read models. The position used is in the `X-As-Of-Position` header.",
    ),
]

AsOfPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="the read model built from the events up to this global position "
        "(a position beyond the last event reads as of the last event)",
    ),
]


@dataclass(frozen=True)
class ReadPoint:
    """Where a read is made: the live read model (``position`` None) or one built as of a
    position; ``moment`` is the time it stands at (days in stage are counted then)."""

    position: int | None
    moment: datetime


def read_point(
    request: Request,
    response: Response,
    as_of: AsOfMoment = None,
    as_of_position: AsOfPosition = None,
) -> ReadPoint:
    now = datetime.now(UTC)
    if as_of is not None and as_of_position is not None:
        raise InvalidValueError("give as_of or as_of_position, not both")
    recorder = request.app.state.crm.recorder
    if as_of is not None:
        position = position_as_of(recorder, as_of)
        moment = min(as_of, now)
    elif as_of_position is not None:
        position = min(as_of_position, head(recorder))
        moment = recorded_at(recorder, position) or now
    else:
        return ReadPoint(None, now)
    response.headers[AS_OF_POSITION_HEADER] = str(position)
    return ReadPoint(position, moment)


ReadPointDep = Annotated[ReadPoint, Depends(read_point)]


def reader_for(projection: str) -> Callable[..., Iterator[duckdb.DuckDBPyConnection]]:
    """A dependency: a read connection to ``projection`` for an authenticated user, live
    or as of the moment or position the request asks for."""

    def dependency(
        request: Request, _: UserDep, point: ReadPointDep, min_position: MinPosition = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        if point.position is None:
            reads: ReadModels = request.app.state.reads
            # Asking the store for its head only when the read model is behind: it is
            # never ahead of the store, so a caught-up read model settles it.
            if min_position and reads.store(projection).position(projection) < min_position:
                check_written(request.app.state.crm, min_position)
            con = read_connection(reads, projection, min_position)
        else:
            cache: AsOfCache = request.app.state.as_of
            con = cache.get(point.position, projection).reader()
        try:
            yield con
        finally:
            con.close()

    return dependency


AuditReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for("audit"))]
