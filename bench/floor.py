"""The framework floor of ``bench commands``: what FastAPI and uvicorn alone serve on this
machine, with this load generator, for the very requests of the command mix.

The app has the mix's routes with the real command models as bodies (so pydantic
validates exactly what ``crm serve`` validates, e-mail checks included), answers each
with a :class:`Receipt`, and does nothing else: no token, no store, no read models. It
also answers the fixture requests (users, a pipeline) with made-up ids. ``crm serve``'s
throughput can only come near this figure, never pass it, so it shows how much of a
target the stack itself leaves on this machine.

It is FastAPI at its cheapest: endpoints ``async`` (no hop to a worker thread, which
``crm serve``'s blocking store calls need) and no access log, in one uvicorn process
with the same event loop and HTTP parser as ``crm serve``.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from fastapi import FastAPI, Response

from api.app import Health
from bench.common import RunningServer, http_server
from commands.accounts import RegisterAccount
from commands.contacts import CreateContact
from commands.context import Receipt
from commands.deals import OpenDeal, StageMove
from commands.interactions import LogCall

#: The module the floor server runs (``uvicorn --factory``).
FACTORY = "bench.floor:create_app"


def create_app() -> FastAPI:
    app = FastAPI(title="framework floor")
    positions = itertools.count(1)

    def receipt(response: Response, location: str | None = None) -> Receipt:
        made = uuid4()
        response.headers["ETag"] = '"1"'
        if location is not None:
            response.headers["Location"] = f"{location}/{made}"
        return Receipt(id=made, version=1, position=next(positions))

    @app.get("/health")
    async def health() -> Health:
        return Health(status="ok", position=0)

    @app.post("/accounts", status_code=201)
    async def register_account(body: RegisterAccount, response: Response) -> Receipt:
        return receipt(response, "/accounts")

    @app.post("/contacts", status_code=201)
    async def create_contact(body: CreateContact, response: Response) -> Receipt:
        return receipt(response, "/contacts")

    @app.post("/deals", status_code=201)
    async def open_deal(body: OpenDeal, response: Response) -> Receipt:
        return receipt(response, "/deals")

    @app.post("/deals/{deal_id}/stage-changes")
    async def move_deal(deal_id: UUID, body: StageMove, response: Response) -> Receipt:
        return receipt(response)

    @app.post("/interactions/calls", status_code=201)
    async def log_call(body: LogCall, response: Response) -> Receipt:
        return receipt(response, "/interactions")

    # Fixtures only: the bench's reps and pipeline.
    @app.post("/users", status_code=201)
    async def invite_user(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid4()), "shown_once": {"token": "floor"}}

    @app.post("/pipelines", status_code=201)
    async def create_pipeline(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid4())}

    return app


@contextmanager
def floor_server(startup_timeout: float = 30.0) -> Iterator[RunningServer]:
    """The floor app in its own uvicorn process."""
    with tempfile.TemporaryDirectory(prefix="crm-floor-") as tmp:
        command = [sys.executable, "-m", "uvicorn", "--factory", FACTORY, "--no-access-log"]
        with http_server(command, os.environ, Path(tmp), "floor", startup_timeout) as server:
            yield server
