"""Fuzzing over real HTTP: schemathesis generates requests for every operation of the
app's own OpenAPI schema, valid and invalid, and sends them with a real token of every
role to a server over a seeded store. No answer may be a 5xx, every 4xx is an RFC 9457
problem, and every answer conforms to the schema (status, media type, body, headers).
Not even a 503: the API's deliberate ones (a read model more than 5 s behind, too many
reads as of a moment at once) cannot happen on a quiet server, so one here is a bug.

Ids in paths, queries and bodies are mostly those of seeded records (accounts, contacts,
a pipeline and its stages, deals, an interaction, tasks, users and their tokens), so that
requests get past "not found" into the commands and reads themselves. The users whose
tokens send the requests are never among the ids, so that the run cannot lock itself out.

The seeded records are the Owner's, and stay outside the team of every user whose token
sends requests: no read (``GET``) that succeeds may show one of them to a role whose read
scope of its kind is less than ``all`` (:func:`shows_out_of_scope`).

``CRM_FUZZ_EXAMPLES`` (default 15) sets the examples per operation, store and generation
mode; e.g. ``CRM_FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz.py`` for a long run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, Response
from schemathesis import checks as schemathesis_checks

from api.app import create_app
from api.settings import Settings
from commands.app import store_env
from domain.permissions import Action, Resource, may
from domain.roles import Authority, Role
from tests.api.test_bad_input import created, seed
from tests.conftest import Person, Store, invite
from tests.services import new_schema, serving

EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "15"))
PROBLEM_JSON = "application/problem+json"
#: Each role's token sends requests; the roles' users are never named by a request.
ROLES = [Role.OWNER, Role.ADMIN, Role.AUDITOR, Role.SENIOR_MANAGER, Role.MANAGER, Role.SALES_REP]

#: Records of each kind seeded beyond those of ``seed``.
EXTRA_RECORDS = 3
#: Body fields and query parameters that name records, by the path parameter whose ids
#: they take.
KNOWN_AS = {
    "contact_ids": "contact_id",
    "owner": "user_id",
    "user": "user_id",
    "account": "account_id",
    "parent": "account_id",
    "entity_id": "record_id",
    "owner_id": "user_id",
    "assignee_id": "user_id",
    "parent_id": "account_id",
    "stage_ids": "stage_id",
    "linked_id": "record_id",
}

CHECKS = [
    schemathesis_checks.not_a_server_error,
    schemathesis_checks.status_code_conformance,
    schemathesis_checks.content_type_conformance,
    schemathesis_checks.response_schema_conformance,
    schemathesis_checks.response_headers_conformance,
]


def operations() -> list[Any]:
    """Every operation of the schema in each generation mode (computed at collection: no
    store is opened). Invalid requests only where there is something to get wrong: a
    parameter other than the token, or a body."""
    spec = create_app(Settings()).openapi()
    cases = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            cases.append(pytest.param(label, GenerationMode.POSITIVE, id=f"valid-{label}"))
            takes = [p for p in operation.get("parameters", []) if p["name"] != "authorization"]
            if takes or "requestBody" in operation:
                cases.append(pytest.param(label, GenerationMode.NEGATIVE, id=f"invalid-{label}"))
    return cases


@dataclass(frozen=True)
class FuzzWorld:
    """A server over a seeded store, its schema, a token per role, and ids by kind."""

    base_url: str
    schema: schemathesis.BaseSchema
    tokens: dict[Role, str]
    ids: dict[str, list[str]]
    #: Per role: the seeded records it may not read.
    hidden: dict[Role, frozenset[str]]


def seed_more(http: httpx.Client, seeded: dict[str, str]) -> dict[str, list[str]]:
    """Ids by the name a path parameter has, from the seeded records and a few more."""
    victims: list[str] = []
    token_ids: list[str] = []
    for role in ROLES:
        if role is Role.OWNER:
            continue
        body = {"email": f"victim-{role.value}@example.com", "name": "Victim", "role": role.value}
        reply = http.post("/users", json=body)
        assert reply.status_code == 201, reply.text
        victims.append(reply.json()["id"])
        token_ids.append(reply.json()["created"]["token_id"])
    records: dict[str, list[str]] = {
        "account": [seeded["account"]],
        "contact": [seeded["contact"]],
        "pipeline": [seeded["pipeline"]],
        "deal": [seeded["deal"]],
        "interaction": [seeded["note"]],
        "task": [seeded["task"]],
        "user": victims,
    }
    # A few of each, so that removing one early in the run leaves others to work on.
    for n in range(EXTRA_RECORDS):
        account = created(
            http.post("/accounts", json={"name": f"Globex {n}", "parent_id": seeded["account"]})
        )
        contact = {
            "first_name": f"Grace {n}",
            "emails": [f"grace{n}@example.com"],
            "account_id": account,
        }
        deal = {
            "title": f"Deal {n}",
            "amount": "10.00",
            "currency": "EUR",
            "pipeline_id": seeded["pipeline"],
            "account_id": account,
        }
        records["account"].append(account)
        records["contact"].append(created(http.post("/contacts", json=contact)))
        records["deal"].append(created(http.post("/deals", json=deal)))
        records["task"].append(created(http.post("/tasks", json={"title": f"Task {n}"})))
    return {
        **{f"{kind}_id": ids for kind, ids in records.items()},
        "record_id": [i for ids in records.values() for i in ids],
        "stage_id": [seeded["lead"], seeded["foreign_stage"]],
        "token_id": token_ids,
        "kind": list(records),
        "role": [role.value for role in ROLES],
        "tag": ["decision-maker", "vip"],
    }


#: The seeded records' kinds that the permission table scopes by owner.
SCOPED_KINDS = {
    "account": Resource.ACCOUNT,
    "contact": Resource.CONTACT,
    "deal": Resource.DEAL,
    "interaction": Resource.INTERACTION,
    "task": Resource.TASK,
}


def out_of_scope(
    ids: dict[str, list[str]], people: dict[Role, Person], owner: Person
) -> dict[Role, frozenset[str]]:
    """Per role, the seeded records (all the Owner's) that the table keeps from it."""
    hidden: dict[Role, frozenset[str]] = {}
    for role, person in people.items():
        reader = Authority(user_id=person.user.id, roles=frozenset({role}))
        hidden[role] = frozenset(
            record_id
            for kind, resource in SCOPED_KINDS.items()
            if not may(reader, resource, Action.READ, owner.user.id)
            for record_id in ids[f"{kind}_id"]
        )
    return hidden


def shown_records(value: Any, listed: bool = False) -> Iterator[str]:
    """The ids of the records a response body shows: each object's ``id`` or
    ``entity_id``, and a listed item's ``deal_id`` (a board's or report's rows); ids
    that merely link to another record (an interaction's ``deal_id``) are not shown."""
    if isinstance(value, dict):
        keys = ("id", "entity_id", "deal_id") if listed else ("id", "entity_id")
        yield from (str(value[key]) for key in keys if value.get(key) is not None)
        for key, inner in value.items():
            yield from shown_records(inner, listed=key == "items")
    elif isinstance(value, list):
        for inner in value:
            yield from shown_records(inner, listed)


def assert_ready(http: httpx.Client, ids: dict[str, list[str]], people: dict[Role, Person]) -> None:
    """The ids name real records, and every role's token works."""
    for kind in ("account", "contact", "pipeline", "deal", "interaction", "task", "user"):
        for record_id in ids[f"{kind}_id"]:
            response = http.get(f"/{kind}s/{record_id}")
            assert response.status_code == 200, (kind, response.text)
    for role, person in people.items():
        me = http.get("/users/me", headers={"Authorization": f"Bearer {person.token}"})
        assert me.status_code == 200, me.text
        assert role.value in me.json()["roles"], me.json()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzWorld]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("fuzz") / "events.sqlite"
        store = Store("sqlite", store_env(None, str(path)))
    else:
        database_url: str = request.getfixturevalue("postgres_database")
        schema_name = new_schema(database_url)
        url = f"{database_url}?schema={schema_name}"
        store = Store("postgres", store_env(url, "", pool_size=20))
    crm = store.open()
    try:
        people = {role: invite(crm, f"{role.value}@example.com", role) for role in ROLES}
        # Writes unlimited: a 429 would hide the answer the request would otherwise get.
        app = create_app(Settings(write_rate_per_second=0), crm=crm)
        with serving(app) as base_url:
            owner = people[Role.OWNER]
            headers = {"Authorization": f"Bearer {owner.token}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
                ids = seed_more(http, seed(http, owner))
                assert_ready(http, ids, people)
                spec = http.get("/openapi.json").json()
            schema = schemathesis.openapi.from_dict(spec)
            tokens = {role: person.token for role, person in people.items()}
            hidden = out_of_scope(ids, people, owner)
            # The check has something to find: the deals are the Owner's, and a Sales Rep
            # and a Manager read only their own or their team's.
            assert set(ids["deal_id"]) <= hidden[Role.SALES_REP] & hidden[Role.MANAGER]
            assert not hidden[Role.OWNER]
            assert not hidden[Role.AUDITOR]
            yield FuzzWorld(base_url, schema, tokens, ids, hidden)
    finally:
        crm.close()


def header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def problem_for_every_4xx(response: Response) -> None:
    if not 400 <= response.status_code < 500:
        return
    media_type = (header(response, "content-type") or "").split(";")[0]
    assert media_type == PROBLEM_JSON, f"{response.status_code} as {media_type}: {response.text}"
    problem = response.json()
    assert problem["status"] == response.status_code, problem
    for member in ("type", "title", "detail"):
        assert isinstance(problem[member], str), problem
        assert problem[member], problem


def allowed(case: Case[Any], name: str, known: list[str]) -> list[str]:
    """The known values that the parameter's schema allows (its enum, if any)."""
    for parameter in case.operation.iter_parameters():
        if parameter.name == name and parameter.location.value in ("path", "query"):
            enum = parameter.definition.get("schema", {}).get("enum")
            return [value for value in known if enum is None or value in enum]
    return known


def use_known_ids(world: FuzzWorld, case: Case[Any], data: st.DataObject) -> None:
    """Mostly replaces generated ids in the path, the query and the body by those of
    seeded records (three times in four: often enough to get past "not found")."""
    body = case.body if isinstance(case.body, dict) else None
    places: list[dict[str, Any]] = [
        values for values in (case.path_parameters, case.query, body) if values is not None
    ]
    for values in places:
        for name, value in values.items():
            known = allowed(case, name, world.ids.get(KNOWN_AS.get(name, name), []))
            # Hypothesis leans to the low end: 3 (keep the generated value) is the rare one.
            if not known or data.draw(st.integers(0, 3), label=f"generated {name}") == 3:
                continue
            if isinstance(value, list) or name.endswith("_ids"):
                many = st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True)
                chosen: list[Any] = data.draw(many, label=name)
                values[name] = chosen
            else:
                values[name] = data.draw(st.sampled_from(known), label=name)


def send(world: FuzzWorld, case: Case[Any], data: st.DataObject, session: requests.Session) -> None:
    use_known_ids(world, case, data)
    role = data.draw(st.sampled_from(ROLES), label="role")
    response = case.call(
        base_url=world.base_url,
        session=session,
        headers={"Authorization": f"Bearer {world.tokens[role]}"},
        timeout=30,
    )
    problem_for_every_4xx(response)
    case.validate_response(response, checks=CHECKS)
    json_body = (header(response, "content-type") or "").startswith("application/json")
    if case.method.upper() == "GET" and 200 <= response.status_code < 300 and json_body:
        leaked = set(shown_records(response.json())) & world.hidden[role]
        assert not leaked, f"{role.value} was shown {leaked}: GET {case.path} {case.query}"


@pytest.mark.parametrize(("label", "mode"), operations())
def test_no_request_gets_a_server_error_or_breaks_the_schema(
    fuzz_world: FuzzWorld, label: str, mode: GenerationMode
) -> None:
    method, path = label.split(" ", 1)
    operation = fuzz_world.schema[path][method]
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode), data=st.data())
    def fuzz(case: Case[Any], data: st.DataObject) -> None:
        send(fuzz_world, case, data, session)

    with session:
        fuzz()
