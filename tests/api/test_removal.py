"""Removing records over real HTTP (both stores): DELETE answers a receipt, the record
reads 404 ("removed") now but as it was in its history, later commands on it are
refused, the read models drop it, and only Managers and above may remove."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from commands.app import Crm
from domain.roles import Role
from tests.conftest import invite

JSON = "application/problem+json"


def created(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def test_a_removed_contact_reads_404_refuses_commands_and_frees_its_email(
    api: httpx.Client,
) -> None:
    contact = created(api, "/contacts", {"first_name": "Ada", "emails": ["ada@example.com"]})
    path = f"/contacts/{contact['id']}"

    removed = api.request("DELETE", path, json={"reason": "asked to be forgotten"})

    assert removed.status_code == 200, removed.text
    assert removed.json()["version"] == contact["version"] + 1
    now = api.get(path)
    assert now.status_code == 404
    assert now.headers["content-type"] == JSON
    assert "removed" in now.json()["detail"]
    as_it_was = api.get(path, params={"version": contact["version"]})
    assert as_it_was.status_code == 200
    assert as_it_was.json()["first_name"] == "Ada"
    history = api.get(f"{path}/history").json()["items"]
    assert history[-1]["action"].endswith("Removed")
    refused = api.post(f"{path}/tags", json={"tag": "vip"})
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/removed"
    assert api.request("DELETE", path).status_code == 409
    # Its address is free for a new contact.
    created(api, "/contacts", {"first_name": "Ada", "emails": ["ada@example.com"]})


def test_a_removed_deal_leaves_the_board_and_takes_no_command(api: httpx.Client) -> None:
    stages = [{"name": "Lead", "probability": 10}]
    pipeline_id = created(api, "/pipelines", {"name": "Sales", "stages": stages})["id"]
    deal = created(
        api,
        "/deals",
        {"title": "Big", "amount": "100.00", "currency": "EUR", "pipeline_id": pipeline_id},
    )
    removed = api.delete(f"/deals/{deal['id']}", params={"reason": "test data"})
    assert removed.status_code == 200, removed.text

    board = api.get(f"/board/{pipeline_id}", params={"min_position": removed.json()["position"]})
    assert board.json()["deals"] == 0
    assert board.json()["totals"] == []
    assert api.get(f"/deals/{deal['id']}").status_code == 404
    won = api.post(f"/deals/{deal['id']}/won", json={})
    assert won.status_code == 409
    assert "removed" in won.json()["detail"]
    timeline = api.get(f"/timeline/deal/{deal['id']}")
    assert timeline.status_code == 404
    assert "removed" in timeline.json()["detail"]


def test_a_removed_account_leaves_the_directory(api: httpx.Client) -> None:
    account = created(api, "/accounts", {"name": "Acme"})
    kept = created(api, "/accounts", {"name": "Globex"})
    removed = api.delete(f"/accounts/{account['id']}")
    assert removed.status_code == 200, removed.text

    listed = api.get("/directory/accounts", params={"min_position": removed.json()["position"]})
    assert [a["id"] for a in listed.json()["items"]] == [kept["id"]]
    contact = api.post("/contacts", json={"first_name": "Kim", "account_id": account["id"]})
    assert contact.status_code == 409


@pytest.mark.parametrize("role", [Role.SALES_REP, Role.AUDITOR])
def test_only_managers_and_above_remove(
    crm: Crm, server: str, api: httpx.Client, role: Role
) -> None:
    account = created(api, "/accounts", {"name": "Acme"})
    person = invite(crm, f"{role.value}@example.com", role)
    headers = {"Authorization": f"Bearer {person.token}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        refused = client.delete(f"/accounts/{account['id']}")
    assert refused.status_code == 403
    assert api.get(f"/accounts/{account['id']}").status_code == 200


def test_a_reason_too_long_is_422(api: httpx.Client) -> None:
    account = created(api, "/accounts", {"name": "Acme"})
    response = api.delete(f"/accounts/{account['id']}", params={"reason": "x" * 1001})
    assert response.status_code == 422
    assert response.headers["content-type"] == JSON
