"""Every escalation the security issue names, attempted over real HTTP by someone who
holds a role: each is refused with a problem+json, and the store gains nothing but the
record of the refusal (401s record nothing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from commands.app import Crm
from commands.context import Context
from commands.handlers import execute
from commands.users import DeactivateUser, RevokeRole
from domain.roles import Authority, Role
from domain.user import LastOwnerError, User
from tests.api.test_auth import assert_forbidden, assert_unauthenticated, connect, created
from tests.api.test_bad_input import assert_problem
from tests.conftest import Person, invite

__all__ = ["connect"]  # the fixture of test_auth, used here


def test_no_one_raises_themselves_or_anyone_to_or_above_their_level(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    senior = invite(crm, "senior@example.com", Role.SENIOR_MANAGER)
    manager = invite(crm, "manager@example.com", Role.MANAGER)
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    client = connect(manager.token)
    # Defined by the Owner: wider than a Manager's own scopes, at a level below theirs.
    wide = created(
        api.post("/roles", json={"name": "Wide", "level": 5, "grants": {"deal": {"read": "all"}}})
    )["id"]
    # Defined by the Owner above the Manager; defined by the Manager, one held by a Senior.
    high = created(api.post("/roles", json={"name": "High", "level": 25, "grants": {}}))["id"]
    mine = created(
        client.post(
            "/roles", json={"name": "Mine", "level": 15, "grants": {"deal": {"read": "own"}}}
        )
    )["id"]
    held = created(
        client.post(
            "/roles", json={"name": "Held", "level": 5, "grants": {"deal": {"read": "own"}}}
        )
    )["id"]
    assert api.post(f"/users/{senior.user.id}/custom-roles", json={"role_id": held}).is_success
    before = crm.position()
    attempts = {
        "grant one's own role": client.post(
            f"/users/{rep.user.id}/roles", json={"role": "manager"}
        ),
        "grant a higher role": client.post(
            f"/users/{rep.user.id}/roles", json={"role": "senior_manager"}
        ),
        "invite at one's level": client.post(
            "/users", json={"email": "peer@example.com", "name": "Peer", "role": "manager"}
        ),
        "change one's own role": client.post(
            f"/users/{manager.user.id}/roles", json={"role": "sales_rep"}
        ),
        "drop one's own role": client.delete(f"/users/{manager.user.id}/roles/manager"),
        "revoke a higher-level user": client.delete(
            f"/users/{senior.user.id}/roles/senior_manager"
        ),
        "deactivate a higher-level user": client.post(f"/users/{senior.user.id}/deactivation"),
        "a custom role at one's level": client.post(
            "/roles", json={"name": "Twin", "level": 20, "grants": {"deal": {"read": "team"}}}
        ),
        "a custom role above one's level": client.post(
            "/roles", json={"name": "Boss", "level": 25, "grants": {"deal": {"read": "team"}}}
        ),
        "a custom role wider than one's scopes": client.post(
            "/roles", json={"name": "Wide", "level": 5, "grants": {"deal": {"read": "all"}}}
        ),
        "make oneself the manager of a higher user": client.put(
            f"/users/{senior.user.id}/manager", json={"manager_id": str(manager.user.id)}
        ),
        "poach a rep into one's team": client.put(
            f"/users/{rep.user.id}/manager", json={"manager_id": str(manager.user.id)}
        ),
        "mint a token to act as a rep": client.post(f"/users/{rep.user.id}/tokens", json={}),
        "hand out scopes wider than one's own": client.post(
            f"/users/{rep.user.id}/custom-roles", json={"role_id": wide}
        ),
        "choose one's own manager": client.put(
            f"/users/{manager.user.id}/manager", json={"manager_id": str(senior.user.id)}
        ),
        "raise a custom role to one's level": client.patch(f"/roles/{mine}", json={"level": 20}),
        "raise a custom role above one's level": client.patch(f"/roles/{mine}", json={"level": 25}),
        "widen a custom role beyond one's scopes": client.patch(
            f"/roles/{mine}", json={"grants": {"deal": {"read": "all"}}}
        ),
        "edit a custom role above one's level": client.patch(
            f"/roles/{high}", json={"level": 5, "grants": {"deal": {"read": "own"}}}
        ),
        "take back scopes wider than one's own": client.patch(
            f"/roles/{wide}", json={"grants": {"deal": {"read": "own"}}}
        ),
        "change what a higher user may do": client.patch(
            f"/roles/{held}", json={"grants": {"deal": {"read": "team"}}}
        ),
        "retire a custom role above one's level": client.delete(f"/roles/{high}"),
    }
    for what, response in attempts.items():
        assert response.status_code == 403, (what, response.text)
        assert_forbidden(crm, response, before)
    assert crm.load(User, manager.user.id).roles == [Role.MANAGER]
    assert crm.load(User, senior.user.id).manager_id is None
    assert crm.load(User, rep.user.id).manager_id is None
    assert crm.load(User, rep.user.id).custom_roles == {}
    shown = {r: api.get(f"/roles/{r}").json() for r in (high, mine, held, wide)}
    assert [shown[r]["version"] for r in (high, mine, wide)] == [1, 1, 1]
    assert shown[held]["version"] == 2  # created, then granted to the Senior Manager


def test_the_last_owner_is_never_deactivated_nor_stripped(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    admin = invite(crm, "admin@example.com", Role.ADMIN)
    before = crm.position()
    for response in (
        connect(admin.token).post(f"/users/{owner.user.id}/deactivation"),
        api.post(f"/users/{owner.user.id}/deactivation"),  # themselves
        api.delete(f"/users/{owner.user.id}/roles/owner"),
    ):
        assert_forbidden(crm, response, before)
    # Not even the operator at the command line, who stands above every role.
    system = Context(actor=Authority.system(), source="cli")
    for command in (
        DeactivateUser(user_id=owner.user.id),
        RevokeRole(user_id=owner.user.id, role=Role.OWNER),
    ):
        with pytest.raises(LastOwnerError):
            execute(crm, command, system)
    assert api.get("/users/me").json()["active"] is True


def test_revoked_and_expired_tokens_act_no_more(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    admin = invite(crm, "admin@example.com", Role.ADMIN)
    revoked = connect(admin.token)
    token_id = api.get(f"/users/{admin.user.id}").json()["token_ids"][0]
    assert api.delete(f"/users/{admin.user.id}/tokens/{token_id}").status_code == 200
    assert_unauthenticated(crm, revoked)

    # An expiry recorded in the past can no longer be issued, so write one that passes soon.
    soon = datetime.now(UTC) + timedelta(seconds=3)
    issued = created(
        api.post(f"/users/{admin.user.id}/tokens", json={"expires_at": soon.isoformat()})
    )
    expiring = connect(issued["shown_once"]["token"])
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert_unauthenticated(crm, expiring)
    refused = expiring.post(f"/users/{admin.user.id}/roles", json={"role": "manager"})
    assert assert_problem(refused, 401)["detail"] == "token expired"
