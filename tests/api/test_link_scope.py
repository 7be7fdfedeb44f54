"""Linking a record one may not read is refused like reading it: a Sales Rep who knows
the id of a colleague's contact, account or deal cannot put it on their own deal,
interaction, task, contact or account (which would show its name on their own
timeline), over HTTP and through an import. The same links to records in reach pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx

from commands.app import Crm
from domain.roles import Role
from tests.api.test_auth import STAGES, assert_forbidden, connect, created
from tests.conftest import Person, invite

__all__ = ["connect"]  # the fixture of test_auth, used here

NOW = datetime.now(UTC).isoformat()


def records_of(api: httpx.Client, owner: UUID, pipeline: str) -> dict[str, str]:
    """An account, a contact and a deal owned by ``owner``, created by the Owner."""
    account = created(api.post("/accounts", json={"name": "Acme", "owner_id": str(owner)}))["id"]
    contact = created(
        api.post(
            "/contacts", json={"first_name": "Kim", "last_name": "Secret", "owner_id": str(owner)}
        )
    )["id"]
    deal = created(
        api.post(
            "/deals",
            json={
                "title": "Deal",
                "amount": "10",
                "currency": "EUR",
                "pipeline_id": pipeline,
                "owner_id": str(owner),
            },
        )
    )["id"]
    return {"account": account, "contact": contact, "deal": deal}


def link_attempts(
    client: httpx.Client, mine: dict[str, str], linked: dict[str, str], pipeline: str
) -> dict[str, Callable[[], httpx.Response]]:
    """Each way of linking the ``linked`` records, to new records or to ``mine``."""
    call = {"direction": "outbound", "duration_seconds": 60, "outcome": "connected"}
    return {
        "a new deal's contact": lambda: client.post(
            "/deals",
            json={
                "title": "Mine",
                "amount": "5",
                "currency": "EUR",
                "pipeline_id": pipeline,
                "contact_ids": [linked["contact"]],
            },
        ),
        "a new deal's account": lambda: client.post(
            "/deals",
            json={
                "title": "Mine",
                "amount": "5",
                "currency": "EUR",
                "pipeline_id": pipeline,
                "account_id": linked["account"],
            },
        ),
        "one's deal's contacts": lambda: client.patch(
            f"/deals/{mine['deal']}", json={"contact_ids": [linked["contact"]]}
        ),
        "a call's contact": lambda: client.post(
            "/interactions/calls",
            json={"occurred_at": NOW, "contact_ids": [linked["contact"]], **call},
        ),
        "a call's account": lambda: client.post(
            "/interactions/calls",
            json={"occurred_at": NOW, "account_id": linked["account"], **call},
        ),
        "a call's deal": lambda: client.post(
            "/interactions/calls", json={"occurred_at": NOW, "deal_id": linked["deal"], **call}
        ),
        "a correction's contact": lambda: client.post(
            f"/interactions/{mine['note']}/corrections", json={"contact_ids": [linked["contact"]]}
        ),
        "a task's record": lambda: client.post(
            "/tasks",
            json={"title": "Call", "linked_kind": "contact", "linked_id": linked["contact"]},
        ),
        "a new contact's account": lambda: client.post(
            "/contacts", json={"first_name": "Lee", "account_id": linked["account"]}
        ),
        "one's contact's account": lambda: client.post(
            f"/contacts/{mine['contact']}/account", json={"account_id": linked["account"]}
        ),
        "a new account's parent": lambda: client.post(
            "/accounts", json={"name": "Sub", "parent_id": linked["account"]}
        ),
        "one's account's parent": lambda: client.post(
            f"/accounts/{mine['account']}/parent", json={"parent_id": linked["account"]}
        ),
    }


def setup(api: httpx.Client, crm: Crm, connect: Any) -> tuple[httpx.Client, dict[str, Any]]:
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    colleague = invite(crm, "colleague@example.com", Role.SALES_REP)
    client = connect(rep.token)
    mine = records_of(api, rep.user.id, pipeline)
    mine["note"] = created(
        client.post(
            "/interactions/notes",
            json={"occurred_at": NOW, "body": "Hello", "deal_id": mine["deal"]},
        )
    )["id"]
    theirs = records_of(api, colleague.user.id, pipeline)
    return client, {"pipeline": pipeline, "mine": mine, "theirs": theirs, "rep": rep}


def test_a_rep_cannot_link_records_outside_their_read_scope(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    client, world = setup(api, crm, connect)
    # Accounts are read by everyone (the table: sales_rep reads all accounts), so only
    # the links to the colleague's contact and deal are out of reach.
    attempts = link_attempts(client, world["mine"], world["theirs"], world["pipeline"])
    out_of_reach = {what: send for what, send in attempts.items() if "account" not in what}
    assert len(out_of_reach) == 6
    for what, send in out_of_reach.items():
        before = crm.position()
        response = send()
        assert response.status_code == 403, (what, response.text)
        assert_forbidden(crm, response, before)
        assert "contact" in response.json()["detail"] or "deal" in response.json()["detail"]
    # The colleague's contact shows nowhere the rep can read.
    for path in (f"/deals/{world['mine']['deal']}", f"/timeline/deal/{world['mine']['deal']}"):
        assert "Secret" not in client.get(path).text


def test_links_within_reach_pass(api: httpx.Client, crm: Crm, owner: Person, connect: Any) -> None:
    client, world = setup(api, crm, connect)
    # The rep's own records, and every account (which a rep reads all of).
    reachable = {**world["mine"], "account": world["theirs"]["account"]}
    for what, send in link_attempts(client, world["mine"], reachable, world["pipeline"]).items():
        response = send()
        assert response.status_code in (200, 201), (what, response.text)


def test_an_import_row_linking_an_unreadable_record_is_refused_with_its_line(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    client, world = setup(api, crm, connect)
    theirs, mine = world["theirs"], world["mine"]
    note = {"kind": "interaction", "type": "note", "body": "hi", "occurred_at": NOW}
    rows = [
        {**note, "external_id": "n1", "contacts": [mine["contact"]], "deal": mine["deal"]},
        {**note, "external_id": "n2", "contacts": [theirs["contact"]]},
        {**note, "external_id": "n3", "deal": theirs["deal"]},
    ]
    response = client.post("/imports", json={"rows": rows})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["written"], report["refused"]) == (1, 2), report
    reasons = {error["index"]: error["reason"] for error in report["errors"]}
    assert set(reasons) == {1, 2}, report
    assert "contact" in reasons[1], reasons
    assert "deal" in reasons[2], reasons


def test_a_deal_names_only_a_pipeline_its_creator_may_read_over_http_and_in_imports(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    # Someone who may open deals of their own, holding no scope on pipelines.
    grants = {"deal": {"read": "own", "create": "own"}}
    role = created(api.post("/roles", json={"name": "Opener", "level": 5, "grants": grants}))
    opener = invite(crm, "opener@example.com", Role.SALES_REP)
    user = f"/users/{opener.user.id}"
    assert api.post(f"{user}/custom-roles", json={"role_id": role["id"]}).status_code == 200
    assert api.delete(f"{user}/roles/sales_rep").status_code == 200
    client = connect(opener.token)
    deal = {"title": "D", "amount": "5", "currency": "EUR"}

    before = crm.position()
    refused = client.post("/deals", json={**deal, "pipeline_id": pipeline})
    assert refused.status_code == 403, refused.text
    assert_forbidden(crm, refused, before)
    rows = [
        {"kind": "deal", "external_id": "d1", **deal, "pipeline": pipeline},
        {"kind": "deal", "external_id": "d2", **deal, "pipeline": "Sales"},
    ]
    report = client.post("/imports", json={"rows": rows})
    assert report.status_code == 200, report.text
    assert (report.json()["written"], report.json()["refused"]) == (0, 2), report.text
    assert all("pipeline" in e["reason"] for e in report.json()["errors"]), report.text
