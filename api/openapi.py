"""The OpenAPI schema says what the API answers when it refuses: RFC 9457 problems.

FastAPI documents one error per operation, a 422 with a body of its own shape
(``HTTPValidationError``, as ``application/json``) that this API never sends: every
refusal here is an ``application/problem+json`` (``api/problems.py``). This replaces it
by the problems each operation can answer, so that clients (and schema-driven tests)
can rely on the schema for the refusals too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from api.problems import PROBLEM_JSON, TITLES

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: why the request was refused.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>` or `about:blank`"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "for validation problems: each offending field",
            "items": {"$ref": "#/components/schemas/ProblemField"},
        },
    },
}
PROBLEM_FIELD_SCHEMA: dict[str, Any] = {
    "title": "ProblemField",
    "type": "object",
    "required": ["field", "message", "type"],
    "properties": {
        "field": {"type": "string", "description": "where, e.g. `body.stages.0.probability`"},
        "message": {"type": "string"},
        "type": {"type": "string"},
    },
}

BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string"},
    }
}
HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}


def problem_statuses(method: str, operation: dict[str, Any]) -> list[int]:
    """The refusals an operation can answer, from what it takes."""
    parameters = operation.get("parameters", [])
    places = {parameter["in"] for parameter in parameters}
    statuses = {503}
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if any(parameter["name"] == "authorization" for parameter in parameters):
        statuses |= {401, 403}
    if "path" in places:
        statuses.add(404)
    if method in BODY_METHODS:
        statuses |= {400, 409, 413, 415, 429}
    return sorted(statuses)


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or TITLES.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def add_problems(spec: dict[str, Any]) -> None:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemField"] = PROBLEM_FIELD_SCHEMA
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            # A route may declare a refusal that its parameters do not show (a query
            # parameter naming a record that does not exist): it is a problem too.
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in declared | set(problem_statuses(method, operation)):
                described = responses.get(str(status), {}).get("description")
                responses[str(status)] = problem_response(status, described)
            operation["responses"] = dict(sorted(responses.items()))


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the ``null`` that FastAPI adds for ``X | None``."""
    branches = schema.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return schema
    rest = [branch for branch in branches if branch != {"type": "null"}]
    others = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**others, **rest[0]} if len(rest) == 1 else {**others, "anyOf": rest}


def drop_null_parameters(spec: dict[str, Any]) -> None:
    """A query parameter or a header is there or not: it cannot be ``null`` (a client
    following the schema would send the text "null"). Optional is ``required: false``."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = without_null(parameter["schema"])


def document_problems(app: FastAPI) -> None:
    """Makes ``app``'s OpenAPI schema (built once, on first use) document its problems
    and its optional parameters as they are sent."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()  # build() keeps the schema in app.openapi_schema
            add_problems(spec)
            drop_null_parameters(spec)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
