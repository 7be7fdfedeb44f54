"""Custom roles over real HTTP, and the escalations they could open, all refused (403,
nothing written but the record of the refusal).

Escalations without custom roles are tested where they live: granting one's own or a
higher role, changing one's own role (``test_auth.py``,
``tests/domain/test_user_roles.py``), revoking a higher-level user and deactivating the
last Owner (``tests/domain/test_user_roles.py``), acting with a revoked token
(``test_auth.py``) or an expired one (``test_token_hygiene.py``)."""

from __future__ import annotations

from typing import Any

import httpx

from commands.app import Crm
from domain.roles import Role
from tests.api.test_auth import assert_forbidden, connect, created
from tests.api.test_bad_input import assert_problem
from tests.conftest import Person, invite

__all__ = ["connect"]  # a fixture, imported to be used here

WITHIN_A_MANAGER = {"deal": {"read": "team", "edit": "own"}, "pipeline": {"read": "all"}}


def role(name: str, level: int, grants: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    return {"name": name, "level": level, "grants": grants or WITHIN_A_MANAGER}


def test_a_custom_role_is_defined_listed_granted_and_revoked(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    client = connect(manager.token)

    defined = created(client.post("/roles", json=role("Deal helper", 15)))
    role_id = defined["created"]["role_id"]
    shown = client.get(f"/roles/{role_id}").json()
    listed = client.get("/roles").json()["items"]
    granted = client.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": role_id})
    holder = client.get(f"/users/{rep.user.id}").json()
    revoked = client.delete(f"/users/{rep.user.id}/custom-roles/{role_id}")

    assert (shown["name"], shown["level"], shown["created_by"]) == (
        "Deal helper",
        15,
        str(manager.user.id),
    )
    assert shown["grants"]["deal"] == {
        "read": "team",
        "create": "none",
        "edit": "own",
        "remove": "none",
    }
    assert shown["grants"]["account"] == {a: "none" for a in ("read", "create", "edit", "remove")}
    assert [r["id"] for r in listed] == [role_id]
    assert granted.status_code == 200, granted.text
    assert holder["custom_role_ids"] == [role_id]
    assert revoked.status_code == 200, revoked.text
    assert client.get(f"/users/{rep.user.id}").json()["custom_role_ids"] == []


def test_a_custom_role_at_or_above_ones_level_or_wider_than_ones_scopes_is_refused(
    crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    client = connect(manager.token)
    before = crm.position()

    refusals = [
        client.post("/roles", json=role("Peer", 20)),
        client.post("/roles", json=role("Boss", 45)),
        # A Manager reads and edits their team's deals, no more.
        client.post("/roles", json=role("Wide", 5, {"deal": {"read": "all"}})),
        client.post("/roles", json=role("Shaper", 5, {"pipeline": {"edit": "all"}})),
    ]

    for response in refusals:
        assert_forbidden(crm, response, before)


def test_granting_a_custom_role_at_or_above_ones_level_or_to_oneself_is_refused(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    high = created(api.post("/roles", json=role("High", 25)))["created"]["role_id"]
    low = created(api.post("/roles", json=role("Low", 5)))["created"]["role_id"]
    client = connect(manager.token)
    before = crm.position()

    refusals = [
        client.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": high}),
        client.post(f"/users/{manager.user.id}/custom-roles", json={"role_id": low}),
    ]

    for response in refusals:
        assert_forbidden(crm, response, before)


def test_a_custom_roles_level_protects_its_holder(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    high = created(api.post("/roles", json=role("High", 25)))["created"]["role_id"]
    assert api.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": high}).is_success
    client = connect(manager.token)
    before = crm.position()

    refusals = [  # the rep now stands at 25, above the Manager's 20
        client.post(f"/users/{rep.user.id}/deactivation"),
        client.delete(f"/users/{rep.user.id}/roles/sales_rep"),
        client.put(f"/users/{rep.user.id}/manager", json={"manager_id": str(manager.user.id)}),
        client.delete(f"/users/{rep.user.id}/custom-roles/{high}"),
    ]

    for response in refusals:
        assert_forbidden(crm, response, before)


def test_a_custom_role_gives_no_power_to_grant(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    holder = invite(crm, "holder@example.com", Role.SALES_REP, by=owner.user.authority)
    other = invite(crm, "other@example.com", Role.SALES_REP, by=owner.user.authority)
    high = created(api.post("/roles", json=role("High", 25)))["created"]["role_id"]
    low = created(api.post("/roles", json=role("Low", 5)))["created"]["role_id"]
    assert api.post(f"/users/{holder.user.id}/custom-roles", json={"role_id": high}).is_success
    assert api.delete(f"/users/{holder.user.id}/roles/sales_rep").is_success
    assert api.delete(f"/users/{other.user.id}/roles/sales_rep").is_success
    client = connect(holder.token)
    before = crm.position()

    refusals = [
        client.post(f"/users/{other.user.id}/custom-roles", json={"role_id": low}),
        client.post("/roles", json=role("Mine", 1)),
        client.post("/users", json={"email": "x@example.com", "name": "X", "role": "sales_rep"}),
    ]

    for response in refusals:
        assert_forbidden(crm, response, before)


def test_a_bad_custom_role_is_a_4xx_problem(api: httpx.Client, crm: Crm) -> None:
    created(api.post("/roles", json=role("Taken", 5)))
    before = crm.position()

    unknown_resource = api.post("/roles", json=role("X", 5, {"invoice": {"read": "all"}}))
    foreign_action = api.post("/roles", json=role("Y", 5, {"audit": {"edit": "all"}}))
    bad_scope = api.post("/roles", json=role("Z", 5, {"deal": {"read": "everything"}}))
    zero = api.post("/roles", json=role("Zero", 0))
    taken = api.post("/roles", json=role("TAKEN", 5))

    for response in (unknown_resource, foreign_action, bad_scope, zero):
        assert_problem(response, 422)
    assert_problem(taken, 409)
    assert crm.position() == before


def test_a_cursor_beyond_the_stores_positions_is_a_422(api: httpx.Client) -> None:
    assert_problem(api.get("/roles", params={"after": 2**64}), 422)
    assert api.get("/roles", params={"after": 2**62}).json() == {"items": [], "next": None}
