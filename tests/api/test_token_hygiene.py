"""Token expiry and rotation, over real HTTP: an expired token is refused (401) from
its expiry on; a rotated token is refused the moment its successor is issued; both are
events of the user's history. Tokens issued before expiry existed (stored events of the
first version, snapshots without expiries) still load and never expire."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from api.cli import main  # noqa: F401  (registers every command)
from api.cli_common import app as cli
from commands.app import Crm
from domain.user import User
from replay.access import access_as_of
from tests.api.test_auth import assert_unauthenticated, connect, created
from tests.api.test_bad_input import assert_problem
from tests.commands.test_metadata import cli_environment
from tests.conftest import Person, Store

__all__ = ["connect"]  # the fixture of test_auth, used here


def test_a_token_works_until_its_expiry_then_is_refused(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    # Long enough that a busy machine still issues and uses it before it expires.
    expires_at = datetime.now(UTC) + timedelta(seconds=6)
    issued = created(
        api.post(
            f"/users/{owner.user.id}/tokens",
            json={"label": "short-lived", "expires_at": expires_at.isoformat()},
        )
    )
    short = connect(issued["shown_once"]["token"])
    assert short.get("/users/me").status_code == 200
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.1)
    assert_unauthenticated(crm, short)
    assert "expired" in short.get("/users/me").json()["detail"]
    # The owner's first token, issued without an expiry, still works.
    assert api.get("/users/me").status_code == 200
    # Who could act, as of a moment: before the expiry with two tokens, after with one.
    user_id = owner.user.id
    before = access_as_of(crm, User, user_id, expires_at - timedelta(milliseconds=500))
    after = access_as_of(crm, User, user_id, datetime.now(UTC))
    assert [u.tokens for u in before.users if u.user_id == user_id] == [2]
    assert [u.tokens for u in after.users if u.user_id == user_id] == [1]


def test_an_expiry_in_the_past_is_refused_and_writes_nothing(
    api: httpx.Client, crm: Crm, owner: Person
) -> None:
    before = crm.position()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = api.post(f"/users/{owner.user.id}/tokens", json={"expires_at": past})
    assert "future" in assert_problem(response, 422)["detail"]
    naive = api.post(f"/users/{owner.user.id}/tokens", json={"expires_at": "2999-01-01T00:00"})
    assert_problem(naive, 422)
    assert crm.position() == before


def test_rotation_issues_a_new_token_and_revokes_the_old_one_in_one_change(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    issued = created(api.post(f"/users/{owner.user.id}/tokens", json={"label": "ci"}))
    old = connect(issued["shown_once"]["token"])
    old_id = issued["created"]["token_id"]
    before = crm.position()
    rotated = created(old.post(f"/users/{owner.user.id}/tokens/{old_id}/rotation", json={}))
    assert rotated["position"] == before + 2  # issued and revoked, saved together
    new = connect(rotated["shown_once"]["token"])
    assert new.get("/users/me").status_code == 200
    assert_unauthenticated(crm, old)
    user = crm.load(User, owner.user.id)
    assert str(old_id) not in user.tokens
    assert rotated["created"]["token_id"] in user.tokens
    # Rotating it again: it is no longer a token of the user.
    again = new.post(f"/users/{owner.user.id}/tokens/{old_id}/rotation", json={})
    assert_problem(again, 409)


def test_a_token_issued_before_expiry_existed_loads_and_never_expires(crm: Crm) -> None:
    """A version-1 ``TokenIssued`` (no ``expires_at``, no ``class_version``) is upcast."""
    user_id, token_id = uuid4(), uuid4()
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": datetime.now(UTC).isoformat()},
        "token_id": {"_type_": "uuid_hex", "_data_": token_id.hex},
        "token_hash": "ab" * 32,
        "label": "old",
        "_meta": {"actor": "system", "request_id": "r", "source": "cli"},
    }
    stored = StoredEvent(user_id, 2, "domain.user:User.TokenIssued", orjson.dumps(state))
    event = crm.mapper.to_domain_event(stored)
    assert isinstance(event, User.TokenIssued)
    assert event.expires_at is None


def test_a_user_snapshot_without_expiries_still_answers(crm: Crm, owner: Person) -> None:
    user = crm.load(User, owner.user.id)
    user.__dict__.pop("token_expiries", None)  # as a snapshot taken before expiry existed
    (token_id,) = user.tokens
    assert user.token_hash(uuid4(), datetime.now(UTC)) is None
    assert user.live_tokens(datetime.now(UTC)) == [token_id]


def test_crm_token_with_an_expiry_records_it(
    crm: Crm, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    runner = CliRunner()
    env = cli_environment(store)
    assert runner.invoke(cli, ["init", "--email", "boss@example.com"], env=env).exit_code == 0
    issued = runner.invoke(cli, ["token", "boss@example.com", "--expires-in-days", "30"], env=env)
    assert issued.exit_code == 0, issued.output
    _, user_hex, token_hex, _ = issued.output.strip().split("_", 3)
    expiry = crm.load(User, UUID(user_hex)).expiries[str(UUID(token_hex))]
    assert timedelta(days=29) < expiry - datetime.now(UTC) <= timedelta(days=30)
    refused = runner.invoke(cli, ["token", "boss@example.com", "--expires-in-days", "0"], env=env)
    assert refused.exit_code == 2
