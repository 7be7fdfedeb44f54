"""Records as of a moment or a version, and their history, over real HTTP on both stores;
bad values are refused as problem+json, never a 500."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import httpx
import pytest

PROBLEM_JSON = "application/problem+json"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def account(api: httpx.Client) -> str:
    """An account at version 3: registered as Acme, renamed twice."""
    account_id: str = ok(api.post("/accounts", json={"name": "Acme"}), 201)["id"]
    for name in ("Acme GmbH", "Acme AG"):
        ok(api.patch(f"/accounts/{account_id}", json={"name": name}))
    return account_id


def test_a_record_as_of_a_moment_or_at_a_version(api: httpx.Client, account: str) -> None:
    entries = ok(api.get(f"/accounts/{account}/history"))["items"]
    assert [e["version"] for e in entries] == [1, 2, 3]
    second = datetime.fromisoformat(entries[1]["recorded_at"])

    at_two = api.get(f"/accounts/{account}", params={"version": 2})
    assert ok(at_two)["name"] == "Acme GmbH"
    assert at_two.headers["ETag"] == '"2"'

    # As recorded by a moment: the same instant in any time zone.
    for moment in (second, second.astimezone(timezone(timedelta(hours=-7)))):
        response = api.get(f"/accounts/{account}", params={"as_of": moment.isoformat()})
        assert ok(response)["version"] == 2
        assert response.headers["ETag"] == '"2"'
    just_before = (second - timedelta(microseconds=1)).isoformat()
    assert ok(api.get(f"/accounts/{account}", params={"as_of": just_before}))["name"] == "Acme"
    later = (datetime.fromisoformat(entries[2]["recorded_at"]) + timedelta(days=1)).isoformat()
    now = ok(api.get(f"/accounts/{account}", params={"as_of": later}))
    assert now == ok(api.get(f"/accounts/{account}"))

    before = (datetime.fromisoformat(entries[0]["recorded_at"]) - timedelta(seconds=1)).isoformat()
    body = problem(api.get(f"/accounts/{account}", params={"as_of": before}), 404)
    assert "did not exist yet" in body["detail"]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"version": "4"}, 422, "no version 4"),
        ({"version": "0"}, 422, "version"),
        ({"version": "-1"}, 422, "version"),
        ({"version": "two"}, 422, "version"),
        ({"version": str(10**30)}, 422, "version"),
        ({"version": "1", "as_of": "2026-01-01T00:00:00Z"}, 422, "not both"),
        ({"as_of": "2026-01-01T00:00:00"}, 422, "as_of"),
        ({"as_of": "yesterday"}, 422, "as_of"),
        ({"as_of": "9999-12-31T23:59:59-05:00"}, 422, "as_of"),
        ({"as_of": "0001-01-01T00:00:00+05:00"}, 422, "as_of"),
    ],
)
def test_bad_as_of_or_version_is_a_problem(
    api: httpx.Client, account: str, params: dict[str, str], status: int, says: str
) -> None:
    body = problem(api.get(f"/accounts/{account}", params=params), status)
    assert says in str(body)


def test_history_pages_by_version(api: httpx.Client, account: str) -> None:
    first = ok(api.get(f"/accounts/{account}/history", params={"limit": 2}))
    assert [e["version"] for e in first["items"]] == [1, 2]
    assert first["next"] == "2"
    rest = ok(api.get(f"/accounts/{account}/history", params={"after_version": first["next"]}))
    assert rest["next"] is None
    (entry,) = rest["items"]
    assert entry["action"] == "Account.DetailsChanged"
    assert entry["changes"] == {"name": {"before": "Acme GmbH", "after": "Acme AG"}}
    assert entry["source"] == "api"
    assert UUID(entry["actor"])
    assert entry["request_id"]
    assert entry["occurred_at"] is None


def test_history_tells_when_an_interaction_happened(api: httpx.Client) -> None:
    account_id = ok(api.post("/accounts", json={"name": "Acme"}), 201)["id"]
    happened = "2026-03-02T09:30:00+01:00"
    note = ok(
        api.post(
            "/interactions/notes",
            json={"occurred_at": happened, "body": "Prefers mornings", "account_id": account_id},
        ),
        201,
    )["id"]
    (entry,) = ok(api.get(f"/interactions/{note}/history"))["items"]
    assert entry["action"] == "Interaction.NoteLogged"
    assert datetime.fromisoformat(entry["occurred_at"]) == datetime.fromisoformat(happened)
    assert entry["changes"]["details.body"] == {"before": None, "after": "Prefers mornings"}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"after_version": "-1"}, 422),
        ({"after_version": "x"}, 422),
        ({"after_version": "4"}, 422),
        ({"after_version": str(10**30)}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "1001"}, 422),
    ],
)
def test_bad_history_parameters_are_a_problem(
    api: httpx.Client, account: str, params: dict[str, str], status: int
) -> None:
    problem(api.get(f"/accounts/{account}/history", params=params), status)


def test_every_kind_of_record_reads_as_of_and_has_a_history(api: httpx.Client) -> None:
    account = ok(api.post("/accounts", json={"name": "Acme"}), 201)["id"]
    stages = [{"name": "Lead", "probability": 10}]
    pipeline = ok(api.post("/pipelines", json={"name": "Sales", "stages": stages}), 201)["id"]
    deal = {"title": "Rollout", "amount": "10", "currency": "EUR", "pipeline_id": pipeline}
    note = {"occurred_at": "2026-03-02T09:30:00Z", "body": "Hi", "account_id": account}
    records = {
        "accounts": account,
        "contacts": ok(api.post("/contacts", json={"first_name": "Ada"}), 201)["id"],
        "pipelines": pipeline,
        "deals": ok(api.post("/deals", json=deal), 201)["id"],
        "interactions": ok(api.post("/interactions/notes", json=note), 201)["id"],
        "tasks": ok(api.post("/tasks", json={"title": "Call back"}), 201)["id"],
        "users": ok(api.get("/users/me"))["id"],
    }
    other_kind = {"accounts": "deals"}
    for path, record_id in records.items():
        (first, *_) = ok(api.get(f"/{path}/{record_id}/history"))["items"]
        assert first["version"] == 1
        assert first["action"].lower().startswith(path[:4])
        at_one = api.get(f"/{path}/{record_id}", params={"version": 1})
        assert ok(at_one)["version"] == 1
        assert at_one.headers["ETag"] == '"1"'
        as_of = api.get(f"/{path}/{record_id}", params={"as_of": first["recorded_at"]})
        assert ok(as_of)["id"] == record_id
        missing = "00000000-0000-0000-0000-000000000007"
        problem(api.get(f"/{path}/{missing}/history"), 404)
        problem(api.get(f"/{path}/{missing}", params={"version": 1}), 404)
        problem(api.get(f"/{path}/not-a-uuid/history"), 422)
        problem(api.get(f"/{path}/{record_id}", params={"version": 1, "as_of": "2026-01-01"}), 422)
    # An id of another kind is not found, as of a version or in history.
    for path, other in other_kind.items():
        problem(api.get(f"/{other}/{records[path]}/history"), 404)
        problem(api.get(f"/{other}/{records[path]}", params={"version": 1}), 404)


def test_history_needs_a_token(server: str, api: httpx.Client, account: str) -> None:
    with httpx.Client(base_url=server) as anonymous:
        problem(anonymous.get(f"/accounts/{account}/history"), 401)
        problem(anonymous.get(f"/accounts/{account}", params={"version": 1}), 401)
