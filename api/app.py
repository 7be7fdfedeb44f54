"""The HTTP API. ``create_app`` wires it; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api import problems
from api.deps import CrmDep
from api.metrics import server_registry
from api.middleware import BodyGuard, CatchUnexpected
from api.openapi import document_problems
from api.ratelimit import TokenBuckets
from api.routes import (
    access,
    accounts,
    analytics,
    audit,
    board,
    contacts,
    deals,
    directory,
    imports,
    interactions,
    pipelines,
    projections,
    roles,
    tasks,
    timeline,
    users,
)
from api.settings import Settings
from api.wiring import build_crm, build_read_models
from commands.app import Crm
from projections.host import ReadModels
from replay.as_of import AsOfCache


class Health(BaseModel):
    status: str
    position: int


def create_app(
    settings: Settings | None = None, crm: Crm | None = None, reads: ReadModels | None = None
) -> FastAPI:
    """The API over ``crm``, or over a store built from ``settings`` (closed on shutdown).

    The read models are ``reads``, or else built from ``settings`` in the data
    directory; an injected ``crm`` without ``reads`` gets read models in memory.
    Their runner starts with the app and is woken after every commit.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_crm = crm is None
        app.state.crm = the_crm = crm if crm is not None else build_crm(settings)
        own_reads = reads is None
        try:
            app.state.reads = the_reads = (
                reads
                if reads is not None
                else build_read_models(the_crm, settings, in_memory=not own_crm)
            )
        except BaseException:
            if own_crm:
                the_crm.close()
            raise
        app.state.as_of = AsOfCache(the_crm.recorder)
        app.state.metrics = server_registry(the_crm, the_reads)
        the_crm.commit_listeners.append(the_reads.runner.wake)
        if own_reads:
            the_reads.start()
        try:
            yield
        finally:
            the_crm.commit_listeners.remove(the_reads.runner.wake)
            if own_reads:
                the_reads.close()
            if own_crm:
                the_crm.close()

    app = FastAPI(
        title="Chronicle CRM",
        summary="An event-sourced CRM core: every change is an immutable event.",
        version="0.1.0",
        lifespan=lifespan,
    )
    if crm is not None:
        app.state.crm = crm
    app.state.write_limits = TokenBuckets(settings.write_rate_per_second, settings.write_burst)
    app.state.denial_limits = TokenBuckets(
        settings.denial_record_rate_per_second, settings.denial_record_burst
    )
    problems.install(app)
    document_problems(app)
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
        (roles.router, "/roles"),
        (audit.router, "/audit"),
        (board.router, "/board"),
        (timeline.router, "/timeline"),
        (directory.router, "/directory"),
        (analytics.router, "/reports"),
        (projections.router, "/projections"),
        (access.router, "/access"),
        (imports.router, "/imports"),
    ]:
        app.include_router(router, prefix=prefix, tags=[prefix.strip("/")])

    @app.get("/health", tags=["health"])
    def health(crm: CrmDep) -> Health:
        return Health(status="ok", position=crm.position())

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics: the store's head, each read model's position and lag",
    )
    def metrics(request: Request) -> Response:
        registry = request.app.state.metrics
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
