"""The read side over HTTP: the dependency that hands a route a read connection to
one read model once it has reached the position the client asks for
(``min_position``, read-your-writes), and the shared query parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, Query, Request

from api.deps import UserDep
from projections.host import ReadModels

#: How long a read waits for its read model to reach ``min_position``.
MAX_WAIT_SECONDS = 5.0


class ReadModelUnavailableError(Exception):
    """A read model is behind the asked position, or its runner has stopped."""


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


MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="wait (up to 5 s) until the read model has reached this position "
        "(the `position` a command returned)",
    ),
]


def reader_for(projection: str) -> Callable[..., Iterator[duckdb.DuckDBPyConnection]]:
    """A dependency: a read connection to ``projection`` for an authenticated user."""

    def dependency(
        request: Request, _: UserDep, min_position: MinPosition = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        con = read_connection(request.app.state.reads, projection, min_position)
        try:
            yield con
        finally:
            con.close()

    return dependency


AuditReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for("audit"))]
