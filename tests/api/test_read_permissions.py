"""Reads follow the permission table, over real HTTP: a matrix generated from
``domain.permissions.PERMISSIONS`` — every role x every read endpoint (record reads:
200 or 403; lists: present or absent) x a record of the reader's own, of their team
(owned by someone who reports to them, set up with ``PUT /users/{id}/manager``) and of
someone else.

One server per store. Each reader's records, their report's and an outsider's are
created by those users (so that an interaction's ``logged_by`` and the audit log's actor
are theirs too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from commands.accounts import RegisterAccount
from commands.app import Crm, store_env
from commands.contacts import CreateContact
from commands.context import Context, Payload
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.interactions import LogNote
from commands.tasks import CreateTask
from domain.permissions import PERMISSIONS, Action, Resource, Scope
from domain.roles import Authority, Role
from tests.conftest import Person, Store, invite
from tests.services import new_schema, serving

ROLES = list(Role)
RELATIONS = ("own", "team", "other")
PROBLEM_JSON = "application/problem+json"


def expected(role: Role, resource: Resource, relation: str, action: Action = Action.READ) -> bool:
    """Whether the table lets ``role`` read (or ``action``) a record of ``relation``."""
    scope = PERMISSIONS[role][resource][action]
    return scope is Scope.ALL or (
        (scope is Scope.TEAM and relation in ("own", "team"))
        or (scope is Scope.OWN and relation == "own")
    )


@dataclass
class Records:
    user: str
    account: str
    contact: str
    deal: str
    note: str
    task: str


@dataclass(frozen=True)
class World:
    http: httpx.Client
    tokens: dict[Role, str]
    #: Per reader role and relation: the records.
    records: dict[tuple[Role, str], Records]
    pipeline: str
    stage: str
    shared_account: str
    position: int

    def get(self, role: Role, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.http.get(path, headers=headers, params={**params})


def act_as(user_id: UUID) -> Context:
    """Setting up, not under test: each record made by (and so owned or logged by) the
    user, with every right to make it."""
    return Context(actor=Authority(user_id=user_id, roles=frozenset({Role.OWNER})), source="api")


def make_records(crm: Crm, user_id: UUID, pipeline: str, shared: str) -> Records:
    ctx = act_as(user_id)

    def run(command: Payload) -> str:
        return str(execute(crm, command, ctx).id)

    account = UUID(run(RegisterAccount(name=f"Account of {user_id}")))
    contact = UUID(run(CreateContact(first_name="Ada", last_name=str(user_id), account_id=account)))
    deal = UUID(
        run(
            OpenDeal(
                title=f"Deal of {user_id}",
                amount=Decimal("100"),
                currency="EUR",
                pipeline_id=UUID(pipeline),
                account_id=account,
            )
        )
    )
    note = run(
        LogNote(
            occurred_at=datetime(2024, 5, 1, 10, tzinfo=UTC),
            body="hi",
            contact_ids=[contact],
            account_id=UUID(shared),
            deal_id=deal,
        )
    )
    task = run(CreateTask(title=f"Task of {user_id}"))
    return Records(str(user_id), str(account), str(contact), str(deal), note, task)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("read-permissions") / "events.sqlite"
        store = Store("sqlite", store_env(None, str(path)))
    else:
        database_url: str = request.getfixturevalue("postgres_database")
        schema = new_schema(database_url)
        store = Store("postgres", store_env(f"{database_url}?schema={schema}", "", pool_size=20))
    crm = store.open()
    try:
        owner = invite(crm, "owner@example.com", Role.OWNER)
        readers = {role: invite(crm, f"reader-{role.value}@example.com", role) for role in ROLES}
        reports = {
            role: invite(crm, f"report-{role.value}@example.com", Role.SALES_REP) for role in ROLES
        }
        outsider: Person = invite(crm, "outsider@example.com", Role.SALES_REP)
        with serving(create_app(Settings(write_rate_per_second=0), crm=crm)) as base_url:
            headers = {"Authorization": f"Bearer {owner.token}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
                for role in ROLES:
                    reply = http.put(
                        f"/users/{reports[role].user.id}/manager",
                        json={"manager_id": str(readers[role].user.id)},
                    )
                    assert reply.status_code == 200, reply.text
                stages = [{"name": "Lead", "probability": 10}]
                reply = http.post("/pipelines", json={"name": "Sales", "stages": stages})
                pipeline = reply.json()["id"]
                stage = http.get(f"/pipelines/{pipeline}").json()["stages"][0]["id"]
                shared = http.post("/accounts", json={"name": "Shared"}).json()["id"]
                theirs = make_records(crm, outsider.user.id, pipeline, shared)
                records: dict[tuple[Role, str], Records] = {}
                for role in ROLES:
                    records[(role, "own")] = make_records(
                        crm, readers[role].user.id, pipeline, shared
                    )
                    records[(role, "team")] = make_records(
                        crm, reports[role].user.id, pipeline, shared
                    )
                    records[(role, "other")] = theirs
                yield World(
                    http,
                    {role: person.token for role, person in readers.items()},
                    records,
                    pipeline,
                    stage,
                    shared,
                    crm.position(),
                )
    finally:
        crm.close()


# -- record reads: 200 or 403 -------------------------------------------------------------

RECORD_READS: list[tuple[Resource, str]] = [
    (resource, path + suffix)
    for resource, path in [
        (Resource.ACCOUNT, "/accounts/{account}"),
        (Resource.CONTACT, "/contacts/{contact}"),
        (Resource.DEAL, "/deals/{deal}"),
        (Resource.INTERACTION, "/interactions/{note}"),
        (Resource.TASK, "/tasks/{task}"),
    ]
    for suffix in ["", "/history", "?version=1"]
] + [
    (Resource.ACCOUNT, "/directory/accounts/{account}"),
    (Resource.ACCOUNT, "/timeline/account/{account}"),
    (Resource.CONTACT, "/timeline/contact/{contact}"),
    (Resource.DEAL, "/timeline/deal/{deal}"),
]


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize(("resource", "template"), RECORD_READS, ids=[t for _, t in RECORD_READS])
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
def test_a_record_read_is_allowed_exactly_as_the_table_says(
    world: World, role: Role, resource: Resource, template: str, relation: str
) -> None:
    path, _, query = template.format(**vars(world.records[(role, relation)])).partition("?")
    params = dict([query.split("=")]) if query else {}
    response = world.get(role, path, min_position=world.position, **params)
    if expected(role, resource, relation):
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["status"] == 403


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
def test_a_subject_access_export_is_allowed_exactly_as_the_table_says(
    world: World, role: Role, relation: str
) -> None:
    contact = world.records[(role, relation)].contact
    response = world.get(role, f"/contacts/{contact}/subject-access", min_position=world.position)
    if expected(role, Resource.CONTACT, relation, Action.ERASE):
        assert response.status_code == 200, response.text
        assert response.json()["contact"]["id"] == contact
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM_JSON


# -- lists: present or absent -------------------------------------------------------------


def items(key: str) -> Callable[[dict[str, Any]], set[str]]:
    return lambda body: {str(item[key]) for item in body["items"]}


def board_deals(body: dict[str, Any]) -> set[str]:
    return {deal["deal_id"] for stage in body["stages"] for deal in stage["items"]}


#: (resource, path, query, what each item shows, which field of the records it is)
LISTS: list[tuple[Resource, str, dict[str, Any], Callable[[dict[str, Any]], set[str]], str]] = [
    (Resource.ACCOUNT, "/directory/accounts", {"limit": 1000}, items("id"), "account"),
    (Resource.CONTACT, "/directory/contacts", {"limit": 1000}, items("id"), "contact"),
    (Resource.DEAL, "/board/{pipeline}", {"limit": 500}, board_deals, "deal"),
    (
        Resource.DEAL,
        "/board/{pipeline}/stages/{stage}/deals",
        {"limit": 1000},
        items("deal_id"),
        "deal",
    ),
    (Resource.AUDIT, "/audit", {"limit": 1000}, items("entity_id"), "account"),
    (
        Resource.ANALYTICS,
        "/reports/stage-transitions",
        {"limit": 1000},
        items("deal_id"),
        "deal",
    ),
    (Resource.ANALYTICS, "/reports/forecast", {}, items("owner_id"), "user"),
    (Resource.ANALYTICS, "/reports/activity", {"limit": 1000}, items("user_id"), "user"),
    (
        Resource.INTERACTION,
        "/timeline/account/{shared_account}",
        {"limit": 1000, "kinds": "interaction"},
        items("entity_id"),
        "note",
    ),
]


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize(
    ("resource", "path", "query", "shown", "field"), LISTS, ids=[path for _, path, *_ in LISTS]
)
@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
def test_a_list_shows_a_record_exactly_as_the_table_says(
    world: World,
    role: Role,
    resource: Resource,
    path: str,
    query: dict[str, Any],
    shown: Callable[[dict[str, Any]], set[str]],
    field: str,
    relation: str,
) -> None:
    url = path.format(
        pipeline=world.pipeline, stage=world.stage, shared_account=world.shared_account
    )
    response = world.get(role, url, min_position=world.position, **query)
    assert response.status_code == 200, response.text
    wanted = getattr(world.records[(role, relation)], field)
    assert (wanted in shown(response.json())) is expected(role, resource, relation)


# -- paging and roll-ups ------------------------------------------------------------------


def test_pages_of_a_scoped_list_hold_every_visible_record_once(world: World) -> None:
    """A rep's contacts (their team's: their own and their report's) page by page, two
    at a time."""
    role = Role.SALES_REP
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        body = world.get(role, "/directory/contacts", min_position=world.position, **params)
        seen += [item["id"] for item in body.json()["items"]]
        after = body.json()["next"]
        if after is None:
            break
    everyone = world.get(Role.OWNER, "/directory/contacts", limit=1000).json()["items"]
    team = {world.records[(role, relation)].user for relation in ("own", "team")}
    visible = [c["id"] for c in everyone if c["owner_id"] in team]
    assert sorted(seen) == sorted(visible)
    assert len(seen) == len(set(seen)) == 2 < len(everyone)


def test_an_account_roll_up_is_withheld_from_who_may_not_read_every_deal(world: World) -> None:
    account = world.records[(Role.SALES_REP, "own")].account
    rep = world.get(Role.SALES_REP, f"/directory/accounts/{account}", min_position=world.position)
    assert rep.status_code == 200, rep.text
    assert rep.json()["open_pipeline"] is None
    assert rep.json()["subtree_open_pipeline"] is None
    owner = world.get(Role.OWNER, f"/directory/accounts/{account}").json()
    assert owner["open_pipeline"]["deals"] == 1


def test_board_totals_count_only_the_deals_in_scope(world: World) -> None:
    def counted(role: Role) -> int:
        body = world.get(role, f"/board/{world.pipeline}", min_position=world.position).json()
        return sum(total["deals"] for total in body["totals"])

    assert counted(Role.SALES_REP) == 1
    assert counted(Role.MANAGER) == 2
    assert counted(Role.OWNER) == len({r.deal for r in world.records.values()})


def test_a_timeline_shows_linked_tasks_only_to_who_reads_every_task(world: World) -> None:
    """The timeline read model does not know who a linked task is assigned to now: a
    reader who may read only some tasks sees the record's own changes, not its tasks'."""
    account = world.records[(Role.MANAGER, "own")].account
    task = {
        "title": "Follow up",
        "assignee_id": world.records[(Role.MANAGER, "own")].user,
        "linked_kind": "account",
        "linked_id": account,
    }
    created = world.http.post("/tasks", json=task)
    assert created.status_code == 201, created.text

    def entity_kinds(role: Role) -> set[str]:
        path = f"/timeline/account/{account}"
        params = {"min_position": created.json()["position"], "kinds": "change"}
        body = world.get(role, path, **params).json()
        return {entry["entity_kind"] for entry in body["items"]}

    assert entity_kinds(Role.SENIOR_MANAGER) == {"account", "task"}
    assert entity_kinds(Role.MANAGER) == {"account"}
