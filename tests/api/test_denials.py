"""Refused attempts are recorded for auditors (``Denial`` events, in the audit log), in a
transaction of their own, at a bounded rate per token, and never at the cost of the 403."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from eventsourcing.utils import get_topic

from api.app import create_app
from api.ratelimit import TokenBuckets
from api.settings import Settings
from commands.app import Crm
from commands.handlers import execute
from commands.users import IssueToken
from domain.denial import Denial
from domain.roles import Role
from tests.api.test_auth import STAGES, assert_forbidden, connect, created
from tests.conftest import Person, invite
from tests.services import serving

__all__ = ["connect"]  # a fixture, imported to be used here


def denials(crm: Crm) -> int:
    topic = get_topic(Denial.Recorded)
    return len(crm.recorder.select_notifications(1, 100_000, topics=[topic]))


@pytest.fixture
def deal(api: httpx.Client) -> str:
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    body = {"title": "Big one", "amount": "100", "currency": "EUR", "pipeline_id": pipeline}
    deal_id: str = created(api.post("/deals", json=body))["id"]
    return deal_id


def test_a_refusal_is_recorded_where_an_auditor_finds_it(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any, deal: str
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    auditor = invite(crm, "auditor@example.com", Role.AUDITOR, by=owner.user.authority)
    before = crm.position()

    refused = connect(rep.token).patch(
        f"/deals/{deal}", json={"title": "Mine now"}, headers={"X-Request-ID": "req-42"}
    )

    assert_forbidden(crm, refused, before)
    assert refused.json()["request_id"] == "req-42"
    page = connect(auditor.token).get(
        "/audit",
        params={"entity_kind": "denial", "actor": str(rep.user.id), "min_position": crm.position()},
    )
    assert page.status_code == 200, page.text
    [entry] = page.json()["items"]
    assert entry["action"] == "Denial.Recorded"
    assert entry["actor"] == str(rep.user.id)
    assert entry["request_id"] == "req-42"
    assert entry["recorded_at"]
    after = {field: change["after"] for field, change in entry["changes"].items()}
    assert after["resource"] == "deal"
    assert after["action"] == "edit"
    assert after["target_id"] == deal
    assert after["operation"] == "PATCH /deals/{deal_id}"
    assert after["refusal"] == "DeniedError"
    assert rep.token not in page.text


def test_escalations_are_recorded_too(crm: Crm, owner: Person, connect: Any) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)

    refused = connect(manager.token).post(f"/users/{manager.user.id}/roles", json={"role": "owner"})

    assert refused.status_code == 403
    [denial] = [
        crm.load(Denial, UUID(str(n.originator_id)))
        for n in crm.recorder.select_notifications(1, 10_000, topics=[get_topic(Denial.Recorded)])
    ]
    assert (denial.resource, denial.action) == (None, None)
    assert denial.operation == "POST /users/{user_id}/roles"
    assert denial.refusal in {"EscalationError", "SelfRoleChangeError"}


@pytest.fixture
def strict_server(crm: Crm) -> Iterator[tuple[str, Any]]:
    """A server that records two refusals per user, then one every 1000 s."""
    settings = Settings(denial_record_rate_per_second=0.001, denial_record_burst=2)
    app = create_app(settings, crm=crm)
    with serving(app) as base_url:
        yield base_url, app


def test_a_flood_of_refusals_is_refused_in_full_but_recorded_at_a_bounded_rate(
    crm: Crm, owner: Person, strict_server: tuple[str, Any]
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    # A second token of the rep's own shares the rep's recording allowance.
    spare = execute(crm, IssueToken(user_id=rep.user.id), rep.ctx).shown_once["token"]
    base_url, _ = strict_server
    replies = []
    for token in (rep.token, spare):
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            replies += [
                client.post("/pipelines", json={"name": "P", "stages": STAGES}) for _ in range(3)
            ]

    assert [r.status_code for r in replies] == [403] * 6
    assert denials(crm) == 2


class BrokenBuckets(TokenBuckets):
    """A recorder's rate limiter that fails, as a full disk or a lost store would."""

    def take(self, key: str) -> None:
        raise RuntimeError("cannot record")


def test_a_refusal_that_cannot_be_recorded_is_still_a_403(
    crm: Crm, owner: Person, strict_server: tuple[str, Any]
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    base_url, app = strict_server
    app.state.denial_limits = BrokenBuckets(1, 1)
    headers = {"Authorization": f"Bearer {rep.token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        before = crm.position()
        refused = client.post("/pipelines", json={"name": "P", "stages": STAGES})

    assert_forbidden(crm, refused, before)
    assert denials(crm) == 0


@pytest.mark.parametrize("tag", ["contacts", "a b"])
def test_a_refusal_names_its_route_not_its_values(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any, tag: str
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    contact = created(api.post("/contacts", json={"first_name": "Ada", "tags": [tag]}))["id"]

    refused = connect(rep.token).delete(f"/contacts/{contact}/tags/{tag}")

    assert refused.status_code == 403
    [notification] = crm.recorder.select_notifications(
        1, 10_000, topics=[get_topic(Denial.Recorded)]
    )
    denial = crm.load(Denial, UUID(str(notification.originator_id)))
    assert denial.operation == "DELETE /contacts/{contact_id}/tags/{tag}"
