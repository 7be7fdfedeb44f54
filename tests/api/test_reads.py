"""The read side over real HTTP: read-your-writes with ``min_position``, projection
status, and bad read parameters refused as problem+json."""

from __future__ import annotations

import httpx
import pytest


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


def test_a_position_not_reached_in_time_is_503_with_retry_after(api: httpx.Client) -> None:
    response = api.get("/audit", params={"min_position": 10**12})

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert "not yet at 1000000000000" in response.json()["detail"]


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
