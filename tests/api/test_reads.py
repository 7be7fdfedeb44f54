"""The read side over real HTTP: read-your-writes with ``min_position``, projection
status, and bad read parameters refused as problem+json."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from api.wiring import build_read_models
from commands.accounts import RegisterAccount
from commands.app import Crm
from commands.handlers import execute
from tests.conftest import Person
from tests.services import serving


def test_a_read_with_the_position_a_command_returned_sees_the_change(api: httpx.Client) -> None:
    for n in range(5):
        created = api.post("/accounts", json={"name": f"Acme {n}"})
        assert created.status_code == 201, created.text
        receipt = created.json()
        # No sleeping: the read waits until the audit log has reached the position.
        page = api.get(
            "/audit",
            params={"entity_id": receipt["id"], "min_position": receipt["position"]},
        )
        assert page.status_code == 200, page.text
        (entry,) = page.json()["items"]
        assert entry["action"] == "Account.Registered"
        assert entry["position"] == receipt["position"]
        assert entry["changes"]["name"] == {"before": None, "after": f"Acme {n}"}


def test_projections_report_their_position_and_lag(api: httpx.Client) -> None:
    receipt = api.post("/accounts", json={"name": "Acme"}).json()
    api.get("/audit", params={"min_position": receipt["position"]})

    report = api.get("/projections").json()

    assert report["head"] == receipt["position"]
    assert report["running"] is True
    audit = next(p for p in report["projections"] if p["name"] == "audit")
    assert audit == {"name": "audit", "position": receipt["position"], "lag": 0}


def test_a_position_not_reached_in_time_is_503_with_retry_after(crm: Crm, owner: Person) -> None:
    # Read models that are never started stay behind the store's head.
    stopped = build_read_models(crm, Settings(), in_memory=True)
    receipt = execute(crm, RegisterAccount(name="Acme"), owner.ctx)
    headers = {"Authorization": f"Bearer {owner.token}"}
    try:
        with serving(create_app(Settings(), crm=crm, reads=stopped)) as base_url:
            response = httpx.get(
                f"{base_url}/audit",
                params={"min_position": receipt.position},
                headers=headers,
                timeout=30,
            )
    finally:
        stopped.close()

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert f"not yet at {receipt.position}" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/audit", "/board", "/directory/accounts", "/reports/funnel"])
def test_a_position_beyond_the_last_event_is_422_at_once(api: httpx.Client, path: str) -> None:
    head = api.get("/projections").json()["head"]

    response = api.get(path, params={"min_position": head + 1})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert f"beyond the store's last event (position {head})" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"min_position": "-1"},
        {"min_position": "soon"},
        {"after": "-5"},
        {"after": "abc"},
        {"limit": "0"},
        {"limit": "100000"},
        {"entity_id": "not-a-uuid"},
        {"entity_kind": "planet"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"until": "2026-13-01T00:00:00Z"},
        {"actor": "x" * 500},
    ],
)
def test_bad_audit_parameters_are_422_problems(api: httpx.Client, params: dict[str, str]) -> None:
    response = api.get("/audit", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_reads_need_a_token(server: str) -> None:
    for path in ("/audit", "/projections"):
        response = httpx.get(server + path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
