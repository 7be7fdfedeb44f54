"""Every error as ``application/problem+json`` (RFC 9457). A client never causes a 500."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from api.deps import REQUEST_ID_PATTERN
from api.ratelimit import RateLimitedError, TokenBuckets
from api.reading import ReadModelUnavailableError
from commands.denials import record_denial
from commands.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    NotFoundError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnknownReferenceError,
    UnsealedHistoryError,
)
from commands.revert import UnknownBatchError
from commands.tokens import user_id_of
from domain.errors import (
    InvalidValueError,
    NotPermittedError,
    RecordRemovedError,
    StateConflictError,
)
from replay.as_of import AsOfBusyError
from replay.records import RecordNotFoundError

log = logging.getLogger("crm.api")

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


# Most specific first: the first matching class decides.
ERROR_STATUS: list[tuple[type[Exception], int, str]] = [
    (UnknownReferenceError, 422, "unknown-reference"),
    (NotFoundError, 404, "not-found"),
    (UnknownBatchError, 404, "not-found"),
    (RecordNotFoundError, 404, "not-found"),
    (UnauthenticatedError, 401, "unauthenticated"),
    (UnsealedHistoryError, 409, "unsealed-history"),
    (ConflictError, 409, "conflict"),
    (IdempotencyKeyReusedError, 422, "idempotency-key-reused"),
    (StoreUnavailableError, 503, "store-unavailable"),
    # The store's own errors, where a read goes to it directly (replay)
    (OperationalError, 503, "store-unavailable"),
    (InterfaceError, 503, "store-unavailable"),
    (ReadModelUnavailableError, 503, "read-model-unavailable"),
    (AsOfBusyError, 503, "as-of-busy"),
    (RateLimitedError, 429, "rate-limited"),
    (InvalidValueError, 422, "invalid-value"),
    # 409 like every other refusal by the record's state (a retracted interaction, a
    # closed deal), with its own type so that clients can tell it apart.
    (RecordRemovedError, 409, "removed"),
    (StateConflictError, 409, "rule-violation"),
    (NotPermittedError, 403, "forbidden"),
]


def error_response(error: Exception) -> JSONResponse:
    for cls, status, slug in ERROR_STATUS:
        if isinstance(error, cls):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            if status in (429, 503):  # an error may say when to come back; else in 5 s
                headers = {"Retry-After": str(getattr(error, "retry_after", 5))}
            return problem(status, str(error), slug, headers=headers)
    log.exception("unexpected error", exc_info=error)
    return problem(500, "an unexpected error occurred; it has been logged", "internal")


NOT_JSON = "the request body is not valid JSON"


def validation_errors(error: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())),
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in error.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return 400, NOT_JSON, errors
    return 422, "the request does not match the expected shape", errors


_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def request_id_of(request: Request) -> str:
    """The client's ``X-Request-ID`` when well-formed, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def route_template(request: Request) -> str:
    """The request's path with its parameters named, as the route declares it:
    ``/deals/{deal_id}`` (no ids, no values)."""
    path = str(request.scope.get("path", ""))  # decoded, as the path parameters are
    # From the right: a parameter's value may also spell an earlier, literal segment.
    for name, value in reversed(request.path_params.items()):
        head, found, tail = path.rpartition(f"/{value}")
        if found:
            path = f"{head}/{{{name}}}{tail}"
    return path


def record_refusal(request: Request, error: NotPermittedError, request_id: str) -> None:
    """Record a refusal of an authenticated caller for auditors (``commands/denials.py``).

    Never raises: the 403 goes out whatever happens here. Each user's refusals are
    recorded at a bounded rate (``denial_limits``, shared by all of the user's tokens): a
    client flooding refusals fills no disk; what is dropped is logged as a count-free
    warning (no token, no ids)."""
    try:
        token_id = getattr(request.state, "token_id", None)
        token = request.headers.get("authorization", "").partition(" ")[2]
        actor_id = user_id_of(token.strip())
        if token_id is None or actor_id is None:
            return  # refused before anyone was authenticated: nobody to attribute it to
        limits: TokenBuckets = request.app.state.denial_limits
        try:
            limits.take(str(actor_id))
        except RateLimitedError:
            log.warning("a refusal was not recorded: its user is over the recording rate")
            return
        operation = f"{request.method} {route_template(request)}"
        record_denial(request.app.state.crm, error, actor_id, request_id, operation)
    except Exception:
        log.exception("a refusal could not be recorded")


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method that some route serves at this path. (Starlette's own ``Allow``
    names only the methods of the first route whose path matched.)"""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def install(app: FastAPI) -> None:
    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        status, detail, errors = validation_errors(error)
        return problem(status, detail, "validation", errors=errors)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        if error.status_code == 400 and error.__cause__ is not None:
            # FastAPI could not parse the body at all (not UTF-8, nested beyond Python's
            # recursion limit, a number too long to convert): the same problem as any
            # other body that is not JSON, rather than its own untyped 400.
            unreadable = {"field": "body", "message": "unreadable", "type": "json_invalid"}
            return problem(400, NOT_JSON, "validation", errors=[unreadable])
        headers = dict(error.headers) if error.headers else {}
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(error.status_code, str(error.detail), headers=headers or None)

    async def on_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(error)

    async def on_model_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in error.errors()
        ]
        return problem(
            422, "the request does not match the expected shape", "validation", errors=errors
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_model_error)
    app.add_exception_handler(HTTPException, on_http)
    for cls, _, _ in ERROR_STATUS:
        app.add_exception_handler(cls, on_error)
    app.add_exception_handler(Exception, on_error)

    async def on_not_permitted(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, NotPermittedError)
        request_id = request_id_of(request)
        # Its own transaction, off the event loop; the refused command wrote nothing.
        await run_in_threadpool(record_refusal, request, error, request_id)
        return problem(403, str(error), "forbidden", request_id=request_id)

    # After the loop above: every refusal (DeniedError, EscalationError, ...) comes here.
    app.add_exception_handler(NotPermittedError, on_not_permitted)
