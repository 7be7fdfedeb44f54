"""Imports follow the permission table: each row needs ``create`` for its owner (a refused
row is reported, the others import); reverting a batch needs ``remove`` (interactions:
``edit``) for every record it created, checked before anything is written."""

from __future__ import annotations

from typing import Any

import httpx

from commands.app import Crm
from domain.roles import Role
from tests.api.test_auth import assert_forbidden, connect
from tests.conftest import Person, invite

__all__ = ["connect"]  # a fixture, imported to be used here


def test_a_sales_rep_imports_their_own_records_only(crm: Crm, owner: Person, connect: Any) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    rows = [
        {"kind": "account", "external_id": "MINE", "name": "Mine Ltd"},
        {
            "kind": "account",
            "external_id": "THEIRS",
            "name": "Theirs Ltd",
            "owner": "owner@example.com",
        },
        {"kind": "contact", "external_id": "C", "first_name": "Cy", "owner": str(owner.user.id)},
    ]

    reply = connect(rep.token).post("/imports", json={"rows": rows})

    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert (result["written"], result["refused"]) == (1, 2)
    reasons = {e["index"]: e["reason"] for e in result["errors"]}
    assert "create account: your roles reach only own records" in reasons[1]
    assert "create contact: your roles reach only own records" in reasons[2]


def test_a_revert_beyond_ones_scope_is_refused_whole(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rows = [
        {"kind": "account", "external_id": "A", "name": "Acme"},
        {"kind": "contact", "external_id": "B", "first_name": "Bo", "owner": str(manager.user.id)},
    ]
    batch = api.post("/imports", json={"rows": rows}).json()["batch_id"]
    before = crm.position()

    refused = connect(manager.token).post(f"/imports/{batch}/revert")

    assert_forbidden(crm, refused, before)  # the Owner's account is outside the team
    reverted = api.post(f"/imports/{batch}/revert")
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["reverted"] == 2
