"""Who may do what, over real HTTP: tokens that stop working, and roles that may not write.

A refusal is a problem+json (401 with ``WWW-Authenticate``, or 403) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eventsourcing.utils import get_topic

from commands.app import Crm
from domain.denial import Denial
from domain.roles import Role
from tests.api.test_bad_input import assert_problem
from tests.conftest import Person, invite

STAGES = [{"name": "Lead", "probability": 10}, {"name": "Won-ish", "probability": 90}]


@pytest.fixture
def connect(server: str) -> Iterator[Any]:
    """Opens HTTP clients with a given bearer token; closes them afterwards."""
    clients: list[httpx.Client] = []

    def open_client(token: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=server, headers=headers, timeout=30)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_unauthenticated(crm: Crm, client: httpx.Client) -> None:
    before = crm.position()
    for response in (client.get("/users/me"), client.post("/accounts", json={"name": "Sneaky"})):
        assert assert_problem(response, 401)["type"] == "/problems/unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert crm.position() == before


def written_since(crm: Crm, before: int) -> list[str]:
    """The topics of the events written after position ``before``, but for the records of
    refusals (``Denial``), which every 403 writes for auditors."""
    notifications = crm.recorder.select_notifications(before + 1, 10_000)
    return [n.topic for n in notifications if n.topic != get_topic(Denial.Recorded)]


def assert_forbidden(crm: Crm, response: httpx.Response, before: int) -> None:
    assert assert_problem(response, 403)["type"] == "/problems/forbidden"
    assert written_since(crm, before) == []


def test_a_revoked_token_is_refused_from_then_on(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    issued = created(api.post(f"/users/{owner.user.id}/tokens", json={"label": "laptop"}))
    laptop = connect(issued["shown_once"]["token"])
    assert laptop.get("/users/me").status_code == 200

    token_id = issued["created"]["token_id"]
    revoked = api.delete(f"/users/{owner.user.id}/tokens/{token_id}")
    assert revoked.status_code == 200, revoked.text

    assert_unauthenticated(crm, laptop)
    assert api.get("/users/me").status_code == 200


def test_the_token_of_a_deactivated_user_is_refused(
    api: httpx.Client, crm: Crm, connect: Any
) -> None:
    invited = created(
        api.post("/users", json={"email": "rep@example.com", "name": "Rep", "role": "sales_rep"})
    )
    rep = connect(invited["shown_once"]["token"])
    assert rep.get("/users/me").status_code == 200

    gone = api.post(f"/users/{invited['id']}/deactivation")
    assert gone.status_code == 200, gone.text

    assert_unauthenticated(crm, rep)


def test_an_auditor_reads_everything_but_writes_nothing(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    auditor = invite(crm, "auditor@example.com", Role.AUDITOR, by=owner.user.authority)
    account = created(api.post("/accounts", json={"name": "Acme"}))["id"]
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    client = connect(auditor.token)
    assert client.get(f"/accounts/{account}").status_code == 200
    before = crm.position()

    writes = [
        client.post("/accounts", json={"name": "Audit Ltd"}),
        client.patch(f"/accounts/{account}", json={"name": "Renamed"}),
        client.post(f"/accounts/{account}/archive"),
        client.post("/contacts", json={"first_name": "Eve"}),
        client.post("/pipelines", json={"name": "Mine", "stages": STAGES}),
        client.post(
            "/deals",
            json={"title": "D", "amount": "1", "currency": "EUR", "pipeline_id": pipeline},
        ),
        client.post("/users", json={"email": "x@example.com", "name": "X", "role": "auditor"}),
        client.post(f"/users/{owner.user.id}/deactivation"),
    ]

    for response in writes:
        assert_forbidden(crm, response, before)


def test_an_auditor_may_still_look_after_their_own_tokens(
    crm: Crm, owner: Person, connect: Any
) -> None:
    auditor = invite(crm, "auditor@example.com", Role.AUDITOR, by=owner.user.authority)
    client = connect(auditor.token)

    issued = created(client.post(f"/users/{auditor.user.id}/tokens", json={"label": "spare"}))

    assert connect(issued["shown_once"]["token"]).get("/users/me").status_code == 200
    before = crm.position()
    others = client.post(f"/users/{owner.user.id}/tokens", json={"label": "theirs"})
    assert_forbidden(crm, others, before)


def test_a_sales_rep_opens_deals_but_cannot_shape_pipelines_or_raise_anyone(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    client = connect(rep.token)
    before = crm.position()

    refusals = [
        client.post("/pipelines", json={"name": "Mine", "stages": STAGES}),
        client.patch(f"/pipelines/{pipeline}", json={"name": "Renamed"}),
        client.post(f"/pipelines/{pipeline}/stages", json={"name": "New", "probability": 50}),
        client.post("/users", json={"email": "boss@example.com", "name": "B", "role": "owner"}),
        client.post("/users", json={"email": "peer@example.com", "name": "P", "role": "sales_rep"}),
        client.post(f"/users/{rep.user.id}/roles", json={"role": "manager"}),
        client.post(f"/users/{owner.user.id}/deactivation"),
    ]

    for response in refusals:
        assert_forbidden(crm, response, before)
    deal = {"title": "Mine", "amount": "5.00", "currency": "EUR", "pipeline_id": pipeline}
    assert client.post("/deals", json=deal).status_code == 201
