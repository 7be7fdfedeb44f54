"""Every stored event says who wrote it, in which request, through what, and with which
idempotency key; its timestamp is UTC."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import main  # noqa: F401  (registers every command)
from api.cli_common import app as cli
from commands.app import Crm
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.persistence import META_KEY, Meta
from commands.pipelines import CreatePipeline, StageSpec
from domain.account import Account
from domain.roles import Role
from tests.conftest import Person, Store, invite

GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def states_after(crm: Crm, position: int, upto: int | None = None) -> list[dict[str, Any]]:
    """The stored (JSON) state of every event after ``position`` (up to ``upto``), in order."""
    notifications = crm.recorder.select_notifications(start=position + 1, stop=upto, limit=10_000)
    return [json.loads(n.state) for n in notifications]


def metas_after(crm: Crm, position: int, upto: int | None = None) -> list[dict[str, Any]]:
    return [state[META_KEY] for state in states_after(crm, position, upto)]


def open_deal(crm: Crm, owner: Person) -> UUID:
    pipeline = execute(
        crm,
        CreatePipeline(name="Sales", stages=[StageSpec(name="Lead", probability=10)]),
        owner.ctx,
    )
    command = OpenDeal(title="Fleet", amount=Decimal("10"), currency="EUR", pipeline_id=pipeline.id)
    return execute(crm, command, owner.ctx).id


def test_events_written_over_http_name_the_user_the_request_id_the_source_and_the_key(
    crm: Crm, owner: Person, api: httpx.Client
) -> None:
    position = crm.position()

    response = api.post(
        "/users",
        json={"email": "rep@example.com", "name": "Rep", "role": "sales_rep"},
        headers={"X-Request-ID": "req-7f3a.42:b", "Idempotency-Key": "invite-rep-1"},
    )

    assert response.status_code == 201, response.text
    expected = {
        "actor": owner.user.id.hex,
        "request_id": "req-7f3a.42:b",
        "source": "api",
        "idempotency_key": "invite-rep-1",
    }
    metas = metas_after(crm, position)
    assert len(metas) >= 5, "user invited, role granted, token issued, e-mail key, key record"
    assert all(meta == expected for meta in metas)
    user_events = list(crm.events.get(UUID(response.json()["id"])))
    assert [Meta.of(event) for event in user_events] == [Meta(**expected)] * len(user_events)


def test_without_headers_every_command_gets_one_request_id_of_its_own_and_no_key(
    crm: Crm, owner: Person, api: httpx.Client
) -> None:
    deal_id = open_deal(crm, owner)
    position = crm.position()

    several = api.patch(
        f"/deals/{deal_id}",
        json={"title": "Fleet 2026", "amount": "12.50", "expected_close_date": "2026-03-31"},
    )
    middle = crm.position()
    another = api.patch(f"/deals/{deal_id}", json={"title": "Fleet 2027"})

    assert several.status_code == another.status_code == 200
    first, second = metas_after(crm, position, upto=middle), metas_after(crm, middle)
    assert len(first) == 3, "title, amount and close date changed"
    assert len(second) == 1
    (request_id,) = {meta["request_id"] for meta in first}
    assert GENERATED_REQUEST_ID.match(request_id)
    assert second[0]["request_id"] != request_id
    for meta in [*first, *second]:
        assert meta["actor"] == owner.user.id.hex
        assert meta["source"] == "api"
        assert meta["idempotency_key"] is None


def test_the_actor_is_whoever_sent_the_request(
    crm: Crm, owner: Person, server: str, api: httpx.Client
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    position = crm.position()

    response = httpx.post(
        f"{server}/contacts",
        json={"first_name": "Ada", "emails": ["ada@example.com"]},
        headers={"Authorization": f"Bearer {rep.token}", "X-Request-ID": "from-rep"},
    )

    assert response.status_code == 201, response.text
    metas = metas_after(crm, position)
    assert len(metas) == 2, "the contact and its e-mail key"
    assert all(m["actor"] == rep.user.id.hex and m["request_id"] == "from-rep" for m in metas)


def test_an_unusable_request_id_is_refused_before_anything_is_written(
    crm: Crm, api: httpx.Client
) -> None:
    position = crm.position()

    response = api.post("/accounts", json={"name": "Acme"}, headers={"X-Request-ID": "two words"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert states_after(crm, position) == []


def test_event_timestamps_are_stored_in_utc(crm: Crm, owner: Person, api: httpx.Client) -> None:
    position = crm.position()
    before = datetime.now(UTC)

    response = api.post("/accounts", json={"name": "Acme"})

    after = datetime.now(UTC)
    assert response.status_code == 201
    for state in states_after(crm, position):
        assert state["timestamp"]["_type_"] == "datetime_iso"
        assert state["timestamp"]["_data_"].endswith("+00:00")
    (registered,) = crm.events.get(UUID(response.json()["id"]))
    assert isinstance(registered, Account.Registered)
    assert registered.timestamp.utcoffset() == timedelta(0)
    assert before <= registered.timestamp <= after


def cli_environment(store: Store) -> dict[str, str]:
    """The ``CRM_`` settings that point the command line at the test's store."""
    env = store.env
    if store.kind == "sqlite":
        return {"CRM_DATA_DIR": str(Path(env["SQLITE_DBNAME"]).parent)}
    password = f":{env['POSTGRES_PASSWORD']}" if env["POSTGRES_PASSWORD"] else ""
    return {
        "CRM_DATABASE_URL": (
            f"postgresql://{env['POSTGRES_USER']}{password}@{env['POSTGRES_HOST']}:"
            f"{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}?schema={env['POSTGRES_SCHEMA']}"
        )
    }


def test_events_written_at_the_command_line_are_by_the_system_through_the_cli(
    crm: Crm, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    runner = CliRunner()
    env = cli_environment(store)

    initialised = runner.invoke(cli, ["init", "--email", "boss@example.com"], env=env)
    middle = crm.position()
    issued = runner.invoke(cli, ["token", "boss@example.com", "--label", "laptop"], env=env)

    assert initialised.exit_code == 0, initialised.output
    assert issued.exit_code == 0, issued.output
    init_metas, token_metas = metas_after(crm, 0, upto=middle), metas_after(crm, middle)
    assert len(init_metas) >= 5
    assert len(token_metas) == 1
    for metas in (init_metas, token_metas):
        (request_id,) = {meta["request_id"] for meta in metas}
        system = {"actor": "system", "request_id": request_id, "source": "cli"}
        assert metas == [{**system, "idempotency_key": None}] * len(metas)
    assert init_metas[0]["request_id"] != token_metas[0]["request_id"]
