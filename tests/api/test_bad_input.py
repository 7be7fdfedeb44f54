"""Bad input over real HTTP: always a 4xx ``application/problem+json``, never a 500, and
nothing written, which every case checks against the store's global position.

The cases share one running server per store (a module-scoped ``world``, opened the way
``tests/conftest.py`` opens its stores): a refused request must leave that world exactly
as it was, so sharing it makes "nothing written" a stronger claim, and keeps hundreds of cases fast.
Requests are written ``"METHOD /path"``; ``{deal}`` in a path and ``"@deal"`` in a body
stand for the seeded records' ids.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import Settings
from commands.app import Crm, store_env
from domain.roles import Role
from tests.conftest import Person, Store, invite
from tests.services import new_schema, serving

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT = 256 * 1024

Body = dict[str, Any] | list[Any] | bytes | None


@dataclass(frozen=True)
class World:
    """A server over a seeded store, with a client authenticated as its Owner."""

    crm: Crm
    http: httpx.Client
    owner: Person
    ids: dict[str, str]

    def url(self, path: str) -> str:
        return path.format_map(self.ids)

    def fill(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@") and value[1:] in self.ids:
            return self.ids[value[1:]]
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    record_id: str = response.json()["id"]
    return record_id


def seed(http: httpx.Client, owner: Person) -> dict[str, str]:
    stages = [{"name": "Lead", "probability": 10}, {"name": "Won-ish", "probability": 90}]
    pipeline = created(http.post("/pipelines", json={"name": "Sales", "stages": stages}))
    other_stages = [{"name": "Intro", "probability": 5}]
    other = created(http.post("/pipelines", json={"name": "Partners", "stages": other_stages}))
    account = created(http.post("/accounts", json={"name": "Acme"}))
    ada = {"first_name": "Ada", "emails": ["ada@example.com"], "account_id": account}
    contact = created(http.post("/contacts", json=ada))
    big = {"title": "Big", "amount": "100.00", "currency": "EUR", "pipeline_id": pipeline}
    deal = created(http.post("/deals", json=big))
    hello = {"occurred_at": "2024-05-01T10:00:00Z", "body": "hi", "contact_ids": [contact]}
    note = created(http.post("/interactions/notes", json=hello))
    return {
        "pipeline": pipeline,
        "lead": http.get(f"/pipelines/{pipeline}").json()["stages"][0]["id"],
        "foreign_stage": http.get(f"/pipelines/{other}").json()["stages"][0]["id"],
        "account": account,
        "contact": contact,
        "deal": deal,
        "note": note,
        "task": created(http.post("/tasks", json={"title": "Call Ada"})),
        "owner": str(owner.user.id),
        "missing": str(uuid4()),
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("bad-input") / "events.sqlite"
        store = Store("sqlite", store_env(None, str(path)))
    else:
        database_url: str = request.getfixturevalue("postgres_database")
        schema = new_schema(database_url)
        store = Store("postgres", store_env(f"{database_url}?schema={schema}", "", pool_size=20))
    crm = store.open()
    try:
        owner = invite(crm, "owner@example.com", Role.OWNER)
        app = create_app(Settings(max_body_bytes=BODY_LIMIT), crm=crm)
        with serving(app) as base_url:
            headers = {"Authorization": f"Bearer {owner.token}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
                yield World(crm, client, owner, seed(client, owner))
    finally:
        crm.close()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``; returns its members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(problem[member], str), problem
        assert problem[member], problem
    return problem


def send(
    world: World, request: str, body: Body = None, headers: dict[str, Any] | None = None
) -> httpx.Response:
    """Bytes go as they are, labelled JSON; anything else is encoded as JSON."""
    method, path = request.split(" ", 1)
    url = world.url(path)
    if isinstance(body, bytes):
        headers = {"Content-Type": "application/json", **(headers or {})}
        return world.http.request(method, url, content=body, headers=headers)
    if body is None:
        return world.http.request(method, url, headers=headers)
    return world.http.request(method, url, json=world.fill(body), headers=headers)


def refused(
    world: World,
    request: str,
    body: Body = None,
    status: int = 422,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sends a request that must be refused with ``status`` and write nothing."""
    before = world.crm.position()
    problem = assert_problem(send(world, request, body, headers), status)
    assert world.crm.position() == before, f"a refused request wrote events: {problem}"
    return problem


def fields_named(problem: dict[str, Any]) -> list[str]:
    assert problem["type"] == "/problems/validation", problem
    return [error["field"] for error in problem["errors"]]


def table(cases: dict[str, tuple[Any, ...]]) -> list[Any]:
    return [pytest.param(*case, id=case_id) for case_id, case in cases.items()]


def deal(**fields: Any) -> dict[str, Any]:
    return {"title": "New", "amount": "10", "currency": "EUR", "pipeline_id": "@pipeline", **fields}


def call(**fields: Any) -> dict[str, Any]:
    return {
        "occurred_at": "2024-05-01T10:00:00Z",
        "contact_ids": ["@contact"],
        "direction": "outbound",
        "duration_seconds": 60,
        "outcome": "connected",
        **fields,
    }


def note(**fields: Any) -> dict[str, Any]:
    return {
        "occurred_at": "2024-05-01T10:00:00Z",
        "body": "x",
        "contact_ids": ["@contact"],
        **fields,
    }


def meeting(**fields: Any) -> dict[str, Any]:
    return {
        "occurred_at": "2024-05-01T10:00:00Z",
        "ends_at": "2024-05-01T11:00:00Z",
        "contact_ids": ["@contact"],
        **fields,
    }


def pipeline(*stages: Any) -> dict[str, Any]:
    return {"name": "P", "stages": list(stages)}


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


def uuids(n: int) -> list[str]:
    return [str(uuid4()) for _ in range(n)]


STAGE = {"name": "Lead", "probability": 10}
NAIVE = "2024-05-01T10:00:00"
USER = {"email": "new@example.com", "name": "New"}


# --- the shape of the body: each refusal names the offending field ---------------------

SHAPE = {
    # wrong types
    "number-for-name": ("POST /accounts", {"name": 42}, "body.name"),
    "list-for-name": ("POST /accounts", {"name": ["Acme"]}, "body.name"),
    "null-for-name": ("POST /accounts", {"name": None}, "body.name"),
    "word-for-amount": ("POST /deals", deal(amount="ten"), "body.amount"),
    "bool-for-amount": ("POST /deals", deal(amount=True), "body.amount"),
    "object-for-amount": ("POST /deals", deal(amount={"value": 1}), "body.amount"),
    "number-for-id": ("POST /deals", deal(pipeline_id=12), "body.pipeline_id"),
    "text-for-list": ("POST /deals", deal(contact_ids="@contact"), "body.contact_ids"),
    "word-for-date": ("POST /deals", deal(expected_close_date="soon"), "body.expected_close_date"),
    "object-for-list": ("POST /pipelines", {"name": "P", "stages": STAGE}, "body.stages"),
    "list-for-object": ("POST /pipelines", pipeline(["Lead", 10]), "body.stages.0"),
    "text-for-int": (
        "POST /pipelines",
        pipeline({"name": "L", "probability": "10"}),
        "body.stages.0.probability",
    ),
    "fraction-for-int": (
        "POST /pipelines",
        pipeline({"name": "L", "probability": 10.5}),
        "body.stages.0.probability",
    ),
    "text-for-email-list": (
        "POST /contacts",
        {"first_name": "A", "emails": "a@b.co"},
        "body.emails",
    ),
    "not-an-email": ("POST /contacts", {"first_name": "A", "emails": ["nope"]}, "body.emails.0"),
    "unknown-enum": (
        "POST /contacts",
        {"first_name": "A", "lifecycle_stage": "vip"},
        "body.lifecycle_stage",
    ),
    "text-for-duration": (
        "POST /interactions/calls",
        call(duration_seconds="1m"),
        "body.duration_seconds",
    ),
    "huge-duration": (
        "POST /interactions/calls",
        call(duration_seconds=10**30),
        "body.duration_seconds",
    ),
    "unknown-direction": ("POST /interactions/calls", call(direction="sideways"), "body.direction"),
    "unknown-role": ("POST /users", {**USER, "role": "emperor"}, "body.role"),
    "number-for-reason": ("POST /deals/{deal}/won", {"reason": 5}, "body.reason"),
    "list-for-datetime": ("PATCH /tasks/{task}", {"due_at": [NAIVE + "Z"]}, "body.due_at"),
    "list-for-body": ("POST /accounts", [{"name": "Acme"}], "body"),
    "string-for-body": ("POST /accounts", b'"Acme"', "body"),
    "null-for-body": ("POST /accounts", b"null", "body"),
    "number-for-body": ("POST /accounts", b"42", "body"),
    # missing required fields
    "no-account-name": ("POST /accounts", {}, "body.name"),
    "no-pipeline": ("POST /deals", without(deal(), "pipeline_id"), "body.pipeline_id"),
    "no-amount": ("POST /deals", without(deal(), "amount"), "body.amount"),
    "no-stages": ("POST /pipelines", {"name": "P"}, "body.stages"),
    "no-probability": ("POST /pipelines", pipeline({"name": "L"}), "body.stages.0.probability"),
    "no-occurred-at": (
        "POST /interactions/notes",
        without(note(), "occurred_at"),
        "body.occurred_at",
    ),
    "no-outcome": ("POST /interactions/calls", without(call(), "outcome"), "body.outcome"),
    "no-stage": ("POST /deals/{deal}/stage-changes", {}, "body.stage"),
    "no-role": ("POST /users", USER, "body.role"),
    "no-reason": ("POST /interactions/{note}/retraction", {}, "body.reason"),
    # unknown fields are refused, not ignored
    "typo": ("POST /accounts", {"name": "A", "nmae": "B"}, "body.nmae"),
    "status-of-a-new-deal": ("POST /deals", deal(status="won"), "body.status"),
    "stage-by-patch": ("PATCH /deals/{deal}", {"stage": "Won-ish"}, "body.stage"),
    "owner-by-patch": ("PATCH /accounts/{account}", {"owner_id": "@owner"}, "body.owner_id"),
    "nested": ("POST /pipelines", pipeline({**STAGE, "color": "red"}), "body.stages.0.color"),
    "mass-assignment": (
        "POST /users",
        {**USER, "role": "sales_rep", "roles": ["owner"]},
        "body.roles",
    ),
    "id-in-path-and-body": (
        "POST /deals/{deal}/stage-changes",
        {"stage": "Lead", "deal_id": "@missing"},
        "body.deal_id",
    ),
    "to-a-command-without-fields": (
        "POST /tasks/{task}/completion",
        {"completed_by": "@owner"},
        "body.completed_by",
    ),
    "to-a-delete": ("DELETE /users/{owner}/roles/manager", {"reason": "x"}, "body.reason"),
    # limits
    "long-name": ("POST /accounts", {"name": "x" * 201}, "body.name"),
    "blank-name": ("POST /accounts", {"name": "   "}, "body.name"),
    "51-contacts": ("POST /deals", deal(contact_ids=uuids(51)), "body.contact_ids"),
    "51-stages": (
        "POST /pipelines",
        pipeline(*[{"name": f"S{i}", "probability": 1} for i in range(51)]),
        "body.stages",
    ),
    "empty-pipeline": ("POST /pipelines", pipeline(), "body.stages"),
    "21-tags": (
        "POST /contacts",
        {"first_name": "A", "tags": [f"t{i}" for i in range(21)]},
        "body.tags",
    ),
    "huge-array": ("POST /contacts", {"first_name": "A", "tags": [1] * 50_000}, "body.tags"),
    "deeply-nested": (
        "POST /contacts",
        b'{"first_name":"A","tags":' + b"[" * 500 + b"]" * 500 + b"}",
        "body.tags.0",
    ),
    "201-attendees": (
        "POST /interactions/meetings",
        meeting(attendees=["a"] * 201),
        "body.attendees",
    ),
    "long-text": ("POST /interactions/notes", note(body="x" * 100_001), "body.body"),
    "empty-text": ("POST /interactions/notes", note(body=""), "body.body"),
    "51-stage-ids": (
        "POST /pipelines/{pipeline}/stage-order",
        {"stage_ids": uuids(51)},
        "body.stage_ids",
    ),
    "probability-101": (
        "POST /pipelines/{pipeline}/stages",
        {**STAGE, "probability": 101},
        "body.probability",
    ),
    "position--1": (
        "POST /pipelines/{pipeline}/stages",
        {**STAGE, "position": -1},
        "body.position",
    ),
    "long-tag-in-path": ("DELETE /contacts/{contact}/tags/" + "t" * 51, None, "tag"),
    # datetimes without a time zone, or that cannot exist
    "naive-note": ("POST /interactions/notes", note(occurred_at=NAIVE), "body.occurred_at"),
    "naive-call": ("POST /interactions/calls", call(occurred_at=NAIVE), "body.occurred_at"),
    "naive-meeting-end": ("POST /interactions/meetings", meeting(ends_at=NAIVE), "body.ends_at"),
    "naive-correction": (
        "POST /interactions/{note}/corrections",
        {"occurred_at": NAIVE},
        "body.occurred_at",
    ),
    "naive-due": ("POST /tasks", {"title": "T", "due_at": NAIVE}, "body.due_at"),
    "naive-due-change": ("PATCH /tasks/{task}", {"due_at": NAIVE}, "body.due_at"),
    "30-february": (
        "POST /interactions/notes",
        note(occurred_at="2024-02-30T10:00:00Z"),
        "body.occurred_at",
    ),
    "offset-24h": (
        "POST /interactions/notes",
        note(occurred_at=NAIVE + "+24:00"),
        "body.occurred_at",
    ),
    # malformed ids in the path
    "malformed-id": ("GET /deals/not-a-uuid", None, "path.deal_id"),
    "number-id": ("POST /deals/123/stage-changes", {"stage": "Lead"}, "path.deal_id"),
    "id-with-suffix": ("PATCH /accounts/{account}x", {"name": "X"}, "path.account_id"),
    "malformed-second-id": ("DELETE /users/{owner}/tokens/not-a-token-id", None, "path.token_id"),
    "unknown-role-in-path": ("DELETE /users/{owner}/roles/emperor", None, "path.role"),
}


@pytest.mark.parametrize(("request_line", "body", "field"), table(SHAPE))
def test_a_body_or_path_of_the_wrong_shape_is_422_naming_the_field(
    world: World, request_line: str, body: Body, field: str
) -> None:
    problem = refused(world, request_line, body)

    assert field in fields_named(problem)


def test_a_whole_number_written_with_a_fraction_is_an_integer(world: World) -> None:
    # JSON Schema (and so the OpenAPI schema) counts 60.0 as the integer 60.
    stages = [{"name": "Lead", "probability": 60.0}]
    created = world.http.post("/pipelines", json={"name": "Whole", "stages": stages})
    assert created.status_code == 201, created.text
    pipeline_id = created.json()["id"]
    stage = {"name": "Late", "probability": 90.0, "position": 1.0}
    added = world.http.post(f"/pipelines/{pipeline_id}/stages", json=stage)
    assert added.status_code == 200, added.text

    pipeline = world.http.get(f"/pipelines/{pipeline_id}").json()

    assert [(s["name"], s["probability"]) for s in pipeline["stages"]] == [
        ("Lead", 60),
        ("Late", 90),
    ]


# Converting these to UTC leaves the range of datetime: the command models accept them,
# and saving raises OverflowError in commands/persistence.py DatetimeAsUTC.encode (a 500).
BEYOND_UTC = {
    "due-before-year-1": ("POST /tasks", {"title": "T", "due_at": "0001-01-01T00:00:00+14:00"}),
    "due-after-year-9999": ("PATCH /tasks/{task}", {"due_at": "9999-12-31T23:59:59-14:00"}),
    "note-before-year-1": (
        "POST /interactions/notes",
        note(occurred_at="0001-01-01T00:00:00+14:00"),
    ),
    "meeting-after-year-9999": (
        "POST /interactions/meetings",
        meeting(occurred_at="9999-12-31T20:00:00-14:00", ends_at="9999-12-31T23:59:59-14:00"),
    ),
    "correction-before-year-1": (
        "POST /interactions/{note}/corrections",
        {"occurred_at": "0001-01-01T00:00:00+14:00"},
    ),
}


@pytest.mark.parametrize(("request_line", "body"), table(BEYOND_UTC))
def test_a_datetime_that_utc_cannot_hold_is_refused(
    world: World, request_line: str, body: Body
) -> None:
    refused(world, request_line, body)


# --- ids: unknown in the path is 404, unknown in the body is 422 ------------------------

UNKNOWN_IN_PATH = {
    "read-deal": ("GET /deals/{missing}", None),
    "read-an-account-as-a-deal": ("GET /deals/{account}", None),
    "read-a-contact-as-a-user": ("GET /users/{contact}", None),
    "move-deal": ("POST /deals/{missing}/stage-changes", {"stage": "Lead"}),
    "update-account": ("PATCH /accounts/{missing}", {"name": "X"}),
    "tag-contact": ("POST /contacts/{missing}/tags", {"tag": "vip"}),
    "complete-task": ("POST /tasks/{missing}/completion", None),
    "grant-role": ("POST /users/{missing}/roles", {"role": "manager"}),
    "retract-a-deal-as-an-interaction": ("POST /interactions/{deal}/retraction", {"reason": "x"}),
}


@pytest.mark.parametrize(("request_line", "body"), table(UNKNOWN_IN_PATH))
def test_an_unknown_id_in_the_path_is_404(world: World, request_line: str, body: Body) -> None:
    problem = refused(world, request_line, body, status=404)

    assert problem["type"] == "/problems/not-found"


def test_an_unknown_stage_id_in_the_path_is_refused(world: World) -> None:
    # 422 today, as the domain's UnknownStageError (an InvalidValueError): the handler
    # does not tell a stage named in the path (404) from one named in a body (422).
    before = world.crm.position()
    response = send(world, "PATCH /pipelines/{pipeline}/stages/{missing}", {"name": "X"})
    assert response.status_code in (404, 422)
    assert_problem(response, response.status_code)
    assert world.crm.position() == before


UNKNOWN_IN_BODY = {
    "deal-pipeline": ("POST /deals", deal(pipeline_id="@missing")),
    "deal-pipeline-is-an-account": ("POST /deals", deal(pipeline_id="@account")),
    "deal-account": ("POST /deals", deal(account_id="@missing")),
    "deal-contact": ("POST /deals", deal(contact_ids=["@contact", "@missing"])),
    "deal-owner": ("POST /deals", deal(owner_id="@missing")),
    "contact-account": ("POST /contacts", {"first_name": "A", "account_id": "@missing"}),
    "contact-owner-is-a-contact": ("POST /contacts", {"first_name": "A", "owner_id": "@contact"}),
    "account-parent": ("POST /accounts", {"name": "A", "parent_id": "@missing"}),
    "link-contact": ("POST /contacts/{contact}/account", {"account_id": "@missing"}),
    "reassign-deal": ("POST /deals/{deal}/owner", {"owner_id": "@missing"}),
    "task-assignee": ("POST /tasks", {"title": "T", "assignee_id": "@missing"}),
    "task-link": ("POST /tasks", {"title": "T", "linked_kind": "deal", "linked_id": "@missing"}),
    "note-contact": ("POST /interactions/notes", note(contact_ids=["@missing"])),
    "call-deal": ("POST /interactions/calls", call(deal_id="@missing")),
}


@pytest.mark.parametrize(("request_line", "body"), table(UNKNOWN_IN_BODY))
def test_an_unknown_record_named_in_the_body_is_422(
    world: World, request_line: str, body: Body
) -> None:
    problem = refused(world, request_line, body)

    assert problem["type"] == "/problems/unknown-reference"


@pytest.mark.parametrize(
    "stage",
    ["Nope", "@foreign_stage", "@missing", "", "x" * 101],
    ids=["unknown-name", "stage-of-another-pipeline", "unknown-id", "empty", "too-long"],
)
def test_a_deal_cannot_move_to_a_stage_its_pipeline_lacks(world: World, stage: str) -> None:
    version = world.http.get(world.url("/deals/{deal}")).json()["version"]

    refused(world, "POST /deals/{deal}/stage-changes", {"stage": stage})

    assert world.http.get(world.url("/deals/{deal}")).json()["version"] == version


# --- money: amounts and currencies as raw JSON tokens -----------------------------------

BAD_AMOUNTS = {
    "negative": '"-1"',
    "negative-number": "-0.01",
    "five-decimals": '"1.00001"',
    "tiny-exponent": '"1e-9"',
    "huge-negative-exponent": '"1e-999999999"',
    "huge-exponent": '"1e999999999"',
    "too-large": '"1e15"',
    "400-digits": '"1' + "0" * 400 + '"',
    "NaN-string": '"NaN"',
    "sNaN-string": '"sNaN"',
    "Infinity-string": '"Infinity"',
    "minus-Infinity-string": '"-Infinity"',
    "NaN-literal": "NaN",
    "Infinity-literal": "Infinity",
    "overflowing-number": "1e400",
    "decimal-comma": '"12,50"',
    "with-symbol": '"€10"',
    "empty": '""',
    "null": "null",
}
BAD_CURRENCIES = {
    "four-letters": '"EURO"',
    "not-iso": '"XXX"',
    "made-up": '"ABC"',
    "lowercase": '"eur"',
    "symbol": '"€"',
    "with-space": '"E U"',
    "empty": '""',
    "numeric-code": "978",
    "null": "null",
}


@pytest.mark.parametrize("amount", BAD_AMOUNTS.values(), ids=BAD_AMOUNTS.keys())
def test_a_deal_with_a_bad_amount_is_refused(world: World, amount: str) -> None:
    pipeline = world.ids["pipeline"]
    body = f'{{"title":"T","amount":{amount},"currency":"EUR","pipeline_id":"{pipeline}"}}'
    refused(world, "POST /deals", body.encode())


@pytest.mark.parametrize("currency", BAD_CURRENCIES.values(), ids=BAD_CURRENCIES.keys())
def test_a_deal_with_a_bad_currency_is_refused(world: World, currency: str) -> None:
    pipeline = world.ids["pipeline"]
    body = f'{{"title":"T","amount":"1","currency":{currency},"pipeline_id":"{pipeline}"}}'
    refused(world, "POST /deals", body.encode())


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "-5"},
        {"amount": "0.123456"},
        {"amount": "Infinity"},
        {"currency": "usd"},
        {"amount": "5", "currency": "XXX"},
    ],
    ids=json.dumps,
)
def test_a_deal_keeps_its_value_when_given_a_bad_one(world: World, change: dict[str, str]) -> None:
    before = world.http.get(world.url("/deals/{deal}")).json()

    refused(world, "PATCH /deals/{deal}", change)

    after = world.http.get(world.url("/deals/{deal}")).json()
    assert (after["amount"], after["currency"]) == (before["amount"], before["currency"])


# --- the body as bytes: JSON, size, media type ------------------------------------------

MALFORMED_JSON = {
    "truncated": b"{",
    "trailing-comma": b'{"name": "A",}',
    "single-quotes": b"{'name': 'A'}",
    "two-documents": b'{"name": "A"} {"name": "B"}',
    "not-json-at-all": b"name=A",
    "not-text": b"\xff\xfe\x00",
    "not-utf8": b'{"name": "\xff"}',
    "nested-beyond-recursion": b"[" * 100_000 + b"]" * 100_000,
    "int-beyond-digit-limit": b'{"name": "A", "n": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("content", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_is_400(world: World, content: bytes) -> None:
    problem = refused(world, "POST /accounts", content, status=400)

    assert problem["type"] == "/problems/validation"
    assert problem["detail"] == "the request body is not valid JSON"
    assert [error["type"] for error in problem["errors"]] == ["json_invalid"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(None, None), (b"", "application/json"), (b"", "text/plain")],
    ids=["no-body", "empty-json", "empty-text"],
)
def test_a_missing_body_is_422_where_one_is_required(
    world: World, content: bytes | None, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    before = world.crm.position()

    response = world.http.post("/accounts", content=content, headers=headers)

    assert fields_named(assert_problem(response, 422)) == ["body"]
    assert world.crm.position() == before


def test_a_body_over_the_limit_is_413(world: World) -> None:
    body = json.dumps({"name": "x" * BODY_LIMIT}).encode()

    problem = refused(world, "POST /accounts", body, status=413)

    assert str(BODY_LIMIT) in problem["detail"]


def test_a_chunked_body_without_a_length_is_413_once_over_the_limit(world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(2 * BODY_LIMIT // 16_384):
            yield b"x" * 16_384
        yield b'"}'

    before = world.crm.position()

    response = world.http.post(
        "/accounts", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413)
    assert world.crm.position() == before
    assert world.http.get("/health").status_code == 200


def test_a_body_exactly_at_the_limit_is_judged_on_its_content(world: World) -> None:
    body = json.dumps({"name": "x" * (BODY_LIMIT - len('{"name": ""}'))}).encode()
    assert len(body) == BODY_LIMIT

    problem = refused(world, "POST /accounts", body)

    assert fields_named(problem) == ["body.name"]


NOT_JSON = {
    "text-plain": (b'{"name": "A"}', "text/plain"),
    "form": (b"name=A", "application/x-www-form-urlencoded"),
    "multipart": (b"--b\r\n\r\nA\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    "xml": (b"<account><name>A</name></account>", "application/xml"),
    "lookalike": (b'{"name": "A"}', "application/jsonx"),
    "no-content-type": (b'{"name": "A"}', None),
}


@pytest.mark.parametrize(("content", "content_type"), table(NOT_JSON))
def test_a_body_that_is_not_json_is_415(
    world: World, content: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    before = world.crm.position()

    response = world.http.post("/accounts", content=content, headers=headers)

    assert_problem(response, 415)
    assert world.crm.position() == before


def test_form_data_is_415(world: World) -> None:
    before = world.crm.position()

    response = world.http.post("/accounts", data={"name": "A"})

    assert_problem(response, 415)
    assert world.crm.position() == before


# --- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "if_match", ["abc", "*", 'W/"x"', '"-1"', '"1.5"', '"' + "9" * 19 + '"', '"1", "2"']
)
def test_a_malformed_if_match_is_422(world: World, if_match: str) -> None:
    move = {"stage": "Won-ish"}
    refused(world, "POST /deals/{deal}/stage-changes", move, headers={"If-Match": if_match})


def test_a_stale_if_match_is_409_and_the_deal_is_unchanged(world: World) -> None:
    current = world.http.get(world.url("/deals/{deal}"))
    version = int(current.headers["ETag"].strip('"'))
    stage = current.json()["stage_id"]
    move = {"stage": "Won-ish" if stage == world.ids["lead"] else "Lead"}

    for stale in (version - 1, version + 1):
        headers = {"If-Match": f'"{stale}"'}
        problem = refused(world, "POST /deals/{deal}/stage-changes", move, 409, headers)
        assert f"expected version {stale}" in problem["detail"]

    assert world.http.get(world.url("/deals/{deal}")).json()["stage_id"] == stage


def test_an_idempotency_key_reused_for_a_different_request_is_422(world: World) -> None:
    key = {"Idempotency-Key": f"register-{uuid4()}"}
    first = world.http.post("/accounts", json={"name": "Idempotent Ltd"}, headers=key)
    assert first.status_code == 201, first.text
    position = world.crm.position()

    problem = refused(world, "POST /accounts", {"name": "Someone Else Ltd"}, headers=key)
    assert problem["type"] == "/problems/idempotency-key-reused"
    refused(world, "POST /contacts", {"first_name": "Idempotent"}, headers=key)

    again = world.http.post("/accounts", json={"name": "Idempotent Ltd"}, headers=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert world.crm.position() == position


@pytest.mark.parametrize("key", ["k" * 201, "k" * 8000, ""], ids=len)
def test_a_bad_idempotency_key_is_422(world: World, key: str) -> None:
    refused(world, "POST /accounts", {"name": "A"}, headers={"Idempotency-Key": key})


@pytest.mark.parametrize(
    "request_id",
    ["has spaces", "semi;colon", "r" * 101, "", "caf\u00e9".encode("latin-1")],
    ids=["spaces", "punctuation", "101-characters", "empty", "latin-1"],
)
def test_a_bad_request_id_is_422(world: World, request_id: str | bytes) -> None:
    refused(world, "POST /accounts", {"name": "A"}, headers={"X-Request-ID": request_id})


def forged(user_id: UUID | str, token_id: UUID | str) -> str:
    return f"Bearer crm_{UUID(str(user_id)).hex}_{UUID(str(token_id)).hex}_{'A' * 43}"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic b3duZXI6cGFzc3dvcmQ=",
        "Token crm_x",
        "Bearer not-a-token",
        "Bearer crm_" + "0" * 32,
        "unknown-user",
        "wrong-secret",
        b"Bearer \xe9\xff",
    ],
    ids=[
        "missing",
        "empty",
        "scheme-only",
        "basic-auth",
        "other-scheme",
        "malformed",
        "truncated",
        "unknown-user",
        "wrong-secret",
        "latin-1-bytes",
    ],
)
def test_bad_credentials_are_401_with_www_authenticate(
    world: World, authorization: str | bytes | None
) -> None:
    if authorization == "unknown-user":
        authorization = forged(uuid4(), uuid4())
    elif authorization == "wrong-secret":
        _, _, token_id, _ = world.owner.token.split("_", 3)
        authorization = forged(world.owner.user.id, token_id)
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1")
    headers = [] if authorization is None else [(b"Authorization", authorization)]
    before = world.crm.position()

    with httpx.Client(base_url=world.http.base_url, timeout=30) as anonymous:
        write = anonymous.post("/accounts", json={"name": "Sneaky"}, headers=headers)
        read = anonymous.get(world.url("/deals/{deal}"), headers=headers)

    for response in (write, read):
        assert assert_problem(response, 401)["type"] == "/problems/unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert world.crm.position() == before


# --- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_line", ["GET /nope", "POST /nope", "GET /deals/{deal}/nope", "GET /"]
)
def test_an_unknown_route_is_a_404_problem(world: World, request_line: str) -> None:
    refused(world, request_line, {} if request_line.startswith("POST") else None, status=404)


WRONG_METHODS = {
    "put-a-deal": ("PUT /deals/{deal}", "GET, PATCH, DELETE"),
    "put-an-account": ("PUT /accounts/{account}", "GET, PATCH, DELETE"),
    "list-deals": ("GET /deals", "POST"),
    "read-a-command": ("GET /deals/{deal}/stage-changes", "POST"),
    "post-to-a-record": ("POST /users/me", "GET"),
}


@pytest.mark.parametrize(("request_line", "allow"), table(WRONG_METHODS))
def test_a_wrong_method_is_a_405_problem_allowing_every_method_of_the_path(
    world: World, request_line: str, allow: str
) -> None:
    method, path = request_line.split(" ", 1)
    before = world.crm.position()

    response = world.http.request(method, world.url(path))

    assert_problem(response, 405)
    assert response.headers["Allow"] == allow
    assert world.crm.position() == before


# --- unicode -----------------------------------------------------------------------------

NAMES = {
    "nul": "\u0000",
    "embedded-nul": "Ac\u0000me",
    "lone-surrogate": "\ud800",
    "trailing-lone-surrogate": "Acme \udfff",
    "200-emoji": "\U0001f600" * 200,
    "emoji-zwj-sequence": "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "combining-marks": "e\u0301" * 100,
    "right-to-left-override": "\u202eemca",
    "zero-width-space": "\u200b",
    "byte-order-mark": "\ufeffAcme",
    "non-characters": "\uffff\ufffe",
    "ideographic-space": "\u3000",
    "line-break": "Acme\r\nLtd",
    "line-separator": "Ω\u2028≈ç√∫",
    "sql": "Robert'); DROP TABLE stored_events;--",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
@pytest.mark.parametrize(
    ("path", "field", "extra"),
    [
        ("/accounts", "name", {}),
        ("/contacts", "first_name", {}),
        ("/pipelines", "name", {"stages": [STAGE]}),
    ],
    ids=["account", "contact", "pipeline"],
)
def test_unicode_in_a_name_is_stored_as_sent_or_refused_never_a_500(
    world: World, path: str, field: str, extra: dict[str, Any], name: str
) -> None:
    # ensure_ascii escapes lone surrogates, which UTF-8 cannot encode as they are.
    body = json.dumps({field: name, **extra}).encode()
    before = world.crm.position()

    response = send(world, f"POST {path}", body)

    if response.status_code == 201:
        stored = world.http.get(f"{path}/{response.json()['id']}")
        assert stored.status_code == 200, stored.text
        assert stored.json()[field] == name.strip()
    else:
        assert_problem(response, 422)
        assert world.crm.position() == before


@pytest.mark.parametrize("tag", NAMES.values(), ids=NAMES.keys())
def test_unicode_in_a_path_segment_is_refused_or_handled_never_a_500(
    world: World, tag: str
) -> None:
    segment = quote(tag.encode("utf-8", "surrogatepass"), safe="")
    before = world.crm.position()

    response = world.http.delete(world.url("/contacts/{contact}/tags/") + segment)

    # Ada carries no tags: whatever the tag, there is nothing to remove.
    assert_problem(response, response.status_code)
    assert response.status_code in (409, 422)
    assert world.crm.position() == before


# --- fuzz --------------------------------------------------------------------------------

FUZZED = [
    "POST /accounts",
    "POST /contacts",
    "POST /deals",
    "POST /pipelines",
    "POST /tasks",
    "POST /interactions/calls",
    "PATCH /deals/{deal}",
    "POST /deals/{deal}/stage-changes",
]
FIELDS = [
    "name", "title", "first_name", "amount", "currency", "pipeline_id", "stage", "stages",
    "probability", "emails", "tags", "contact_ids", "account_id", "owner_id", "occurred_at",
    "direction", "duration_seconds", "outcome", "due_at", "expected_close_date", "parent_id",
]  # fmt: skip
HINTS = [
    "@pipeline", "@contact", "@account", "@deal", "@owner", "@missing", "@lead", "Lead",
    "EUR", "eur", "-1", "0.00001", "1e400", "NaN", "2024-05-01T10:00:00Z", NAIVE,
    "2024-05-01", "inbound", "connected", "deal", "a@example.com",
]  # fmt: skip
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(HINTS)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
bodies = json_values | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)


@pytest.mark.parametrize("request_line", FUZZED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_random_json_never_causes_a_500_and_a_refusal_writes_nothing(
    world: World, request_line: str, body: Any
) -> None:
    # NaN and Infinity go out as the bare literals that Python's JSON parser accepts.
    content = json.dumps(world.fill(body), allow_nan=True).encode()
    before = world.crm.position()

    response = send(world, request_line, content)

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
        assert world.crm.position() == before


# --- the last line of defence -------------------------------------------------------------


def test_an_unexpected_error_is_a_logged_500_problem_and_the_connection_stays_open(
    crm: Crm, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(), crm=crm)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug, not the client's fault")

    with serving(app) as base_url, caplog.at_level(logging.ERROR, logger="crm.api"):
        url = httpx.URL(base_url)
        connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
        try:
            connection.request("GET", "/boom")
            first = connection.getresponse()
            problem = json.loads(first.read())
            # The same connection: the server must not have dropped it.
            connection.request("GET", "/health")
            second = connection.getresponse()
            second.read()
        finally:
            connection.close()

    assert first.status == 500
    assert first.getheader("content-type") == PROBLEM_JSON
    assert problem["type"] == "/problems/internal"
    assert "bug" not in problem["detail"]
    assert second.status == 200
    assert "a bug, not the client's fault" in caplog.text
