"""The HTTP API. ``create_app`` wires it; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from api import problems
from api.deps import CrmDep
from api.middleware import BodyGuard, CatchUnexpected
from api.routes import accounts, contacts, deals, interactions, pipelines, tasks, users
from api.settings import Settings
from api.wiring import build_crm
from commands.app import Crm


class Health(BaseModel):
    status: str
    position: int


def create_app(settings: Settings | None = None, crm: Crm | None = None) -> FastAPI:
    """The API over ``crm``, or over a store built from ``settings`` (closed on shutdown)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = crm is None
        app.state.crm = crm if crm is not None else build_crm(settings)
        try:
            yield
        finally:
            if owned:
                app.state.crm.close()

    app = FastAPI(
        title="Chronicle CRM",
        summary="An event-sourced CRM core: every change is an immutable event.",
        version="0.1.0",
        lifespan=lifespan,
    )
    if crm is not None:
        app.state.crm = crm
    problems.install(app)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchUnexpected)  # outermost: added last

    for router, prefix in [
        (accounts.router, "/accounts"),
        (contacts.router, "/contacts"),
        (pipelines.router, "/pipelines"),
        (deals.router, "/deals"),
        (interactions.router, "/interactions"),
        (tasks.router, "/tasks"),
        (users.router, "/users"),
    ]:
        app.include_router(router, prefix=prefix, tags=[prefix.strip("/")])

    @app.get("/health", tags=["health"])
    def health(crm: CrmDep) -> Health:
        return Health(status="ok", position=crm.position())

    return app
