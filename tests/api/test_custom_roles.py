"""Custom roles over real HTTP, and the escalations they could open, all refused (403,
nothing written but the record of the refusal).

Escalations without custom roles are tested where they live: granting one's own or a
higher role, changing one's own role (``test_auth.py``,
``tests/domain/test_user_roles.py``), revoking a higher-level user and deactivating the
last Owner (``tests/domain/test_user_roles.py``), acting with a revoked token
(``test_auth.py``) or an expired one (``test_token_hygiene.py``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx

from commands.app import Crm
from commands.users import authority_of
from domain.custom_role import CustomRole
from domain.roles import Role
from domain.user import User
from tests.api.test_auth import STAGES, assert_forbidden, connect, created
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


# -- editing, retiring, who sees them ------------------------------------------------------


def test_an_edit_changes_what_every_holder_may_do_at_once(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    pipeline = created(api.post("/pipelines", json={"name": "Sales", "stages": STAGES}))["id"]
    keeper = created(api.post("/roles", json=role("Keeper", 5, {"pipeline": {"read": "all"}})))
    role_id = keeper["id"]
    assert api.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": role_id}).is_success
    client = connect(rep.token)
    rename = {"name": "Renamed by the rep"}
    assert client.patch(f"/pipelines/{pipeline}", json=rename).status_code == 403

    version = api.get(f"/roles/{role_id}").headers["ETag"]
    widened = api.patch(
        f"/roles/{role_id}",
        json={"grants": {"pipeline": {"read": "all", "edit": "all"}}, "name": "Pipeline keeper"},
        headers={"If-Match": version},
    )
    renamed_by_the_rep = client.patch(f"/pipelines/{pipeline}", json=rename)
    stale = api.patch(f"/roles/{role_id}", json={"grants": {}}, headers={"If-Match": version})
    narrowed = api.patch(f"/roles/{role_id}", json={"grants": {"pipeline": {"read": "all"}}})

    assert widened.status_code == 200, widened.text
    assert widened.headers["ETag"] == f'"{widened.json()["version"]}"'
    assert renamed_by_the_rep.status_code == 200, renamed_by_the_rep.text
    assert_problem(stale, 409)
    assert narrowed.status_code == 200, narrowed.text
    assert client.patch(f"/pipelines/{pipeline}", json={"name": "Again"}).status_code == 403
    shown = api.get(f"/roles/{role_id}").json()
    assert (shown["name"], shown["grants"]["pipeline"]["edit"]) == ("Pipeline keeper", "none")
    assert shown["holder_ids"] == [str(rep.user.id)]
    actions = [e["action"] for e in api.get(f"/roles/{role_id}/history").json()["items"]]
    assert actions == [
        "CustomRole.Created",
        "CustomRole.HolderAdded",
        "CustomRole.Renamed",
        "CustomRole.GrantsChanged",
        "CustomRole.GrantsChanged",
    ]


def test_a_new_level_protects_the_holders_at_once(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    role_id = created(api.post("/roles", json=role("Helper", 15)))["id"]
    assert api.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": role_id}).is_success

    raised = api.patch(f"/roles/{role_id}", json={"level": 25})
    before = crm.position()
    refused = connect(manager.token).post(f"/users/{rep.user.id}/deactivation")

    assert raised.status_code == 200, raised.text
    assert_forbidden(crm, refused, before)
    assert api.get(f"/roles/{role_id}").json()["level"] == 25
    history = api.get(f"/users/{rep.user.id}/history").json()["items"]
    assert history[-1]["action"] == "User.CustomRoleLevelChanged"


def test_a_rename_frees_the_old_name_and_takes_no_name_in_use(api: httpx.Client) -> None:
    first = created(api.post("/roles", json=role("First", 5)))["id"]
    created(api.post("/roles", json=role("Second", 5)))

    taken = api.patch(f"/roles/{first}", json={"name": "SECOND"})
    renamed = api.patch(f"/roles/{first}", json={"name": "Primary"})
    recase = api.patch(f"/roles/{first}", json={"name": "PRIMARY"})

    assert_problem(taken, 409)
    assert renamed.status_code == 200, renamed.text
    assert recase.status_code == 200, recase.text
    created(api.post("/roles", json=role("first", 5)))  # the old name is free again
    assert_problem(api.post("/roles", json=role("primary", 5)), 409)


def test_a_bad_edit_is_a_4xx_problem(api: httpx.Client, crm: Crm) -> None:
    role_id = created(api.post("/roles", json=role("Helper", 5)))["id"]
    before = crm.position()

    for body in (
        {"level": 0},
        {"name": None},
        {"grants": None},
        {"grants": {"deal": {"read": "most"}}},
        {"colour": "red"},
    ):
        assert_problem(api.patch(f"/roles/{role_id}", json=body), 422)
    assert_problem(api.patch(f"/roles/{uuid4()}", json={"name": "Ghost"}), 404)
    assert crm.position() == before


def test_a_role_is_retired_only_once_nobody_active_holds_it_and_is_granted_no_more(
    api: httpx.Client, crm: Crm, owner: Person
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    gone = invite(crm, "gone@example.com", Role.SALES_REP, by=owner.user.authority)
    role_id = created(api.post("/roles", json=role("Helper", 5)))["id"]
    for user in (rep, gone):
        grant = api.post(f"/users/{user.user.id}/custom-roles", json={"role_id": role_id})
        assert grant.is_success, grant.text
    assert api.post(f"/users/{gone.user.id}/deactivation").is_success

    held = api.delete(f"/roles/{role_id}")
    assert api.delete(f"/users/{rep.user.id}/custom-roles/{role_id}").is_success
    retired = api.delete(f"/roles/{role_id}", params={"reason": "merged"})
    before = crm.position()
    regranted = api.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": role_id})
    edited = api.patch(f"/roles/{role_id}", json={"name": "Back"})
    again = api.delete(f"/roles/{role_id}")

    assert "held by 1 active user" in assert_problem(held, 409)["detail"]
    assert retired.status_code == 200, retired.text
    for response in (regranted, edited, again):
        assert_problem(response, 409)
    assert crm.position() == before
    shown = api.get(f"/roles/{role_id}").json()
    assert (shown["retired"], shown["holder_ids"]) == (True, [str(gone.user.id)])
    assert role_id not in [r["id"] for r in api.get("/roles").json()["items"]]
    listed = api.get("/roles", params={"include_retired": True}).json()["items"]
    assert role_id in [r["id"] for r in listed]
    # The deactivated holder keeps it on record, but a retired role gives nothing.
    assert authority_of(crm, crm.load(User, gone.user.id)).custom_grants == ()


def test_a_role_is_shown_to_who_administers_users_and_to_who_holds_defined_or_may_grant_it(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    admin = invite(crm, "admin@example.com", Role.ADMIN, by=owner.user.authority)
    auditor = invite(crm, "auditor@example.com", Role.AUDITOR, by=owner.user.authority)
    manager = invite(crm, "manager@example.com", Role.MANAGER, by=owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    high = created(api.post("/roles", json=role("High", 25)))["id"]
    low = created(api.post("/roles", json=role("Low", 5)))["id"]
    mine = created(
        connect(rep.token).post("/roles", json=role("Mine", 5, {"pipeline": {"read": "all"}}))
    )["id"]

    def seen(person: Person) -> set[str]:
        return {r["id"] for r in connect(person.token).get("/roles").json()["items"]}

    assert seen(admin) == seen(auditor) == {high, low, mine}
    assert seen(manager) == {low, mine}  # below the Manager's level, within their scopes
    assert seen(rep) == {mine}
    assert_problem(connect(rep.token).get(f"/roles/{low}"), 403)
    assert_problem(connect(rep.token).get(f"/roles/{low}/history"), 403)
    assert api.post(f"/users/{rep.user.id}/custom-roles", json={"role_id": high}).is_success
    # High's grants (a team's deals) are the rep's now: Low lies within their scopes too.
    assert seen(rep) == {high, low, mine}
    assert connect(rep.token).get(f"/roles/{high}").json()["name"] == "High"
    assert connect(rep.token).get("/users/me").json()["custom_role_ids"] == [high]


def test_holders_granted_before_roles_recorded_them_still_count(
    api: httpx.Client, crm: Crm, owner: Person, connect: Any
) -> None:
    """A role granted by an earlier release recorded no holder on the role (only the
    user's own event): its holders are found from their grants all the same, so they
    bound who edits it and keep it from being retired under them."""
    role_id = created(api.post("/roles", json=role("Legacy", 5)))["id"]
    admin = invite(crm, "admin@example.com", Role.ADMIN, by=owner.user.authority)
    senior = invite(crm, "senior@example.com", Role.SENIOR_MANAGER, by=owner.user.authority)
    holder = crm.load(User, admin.user.id)
    holder.grant_custom_role(crm.load(CustomRole, UUID(role_id)), by=owner.user.authority)
    crm.save_with(owner.ctx.meta, holder)  # as the earlier release: the user's event alone
    assert crm.load(CustomRole, UUID(role_id)).holder_ids == []

    before = crm.position()
    narrowed = connect(senior.token).patch(
        f"/roles/{role_id}", json={"grants": {"deal": {"read": "own"}}}
    )
    assert narrowed.status_code == 403, narrowed.text
    assert_forbidden(crm, narrowed, before)
    assert "held by 1 active user" in assert_problem(api.delete(f"/roles/{role_id}"), 409)["detail"]
    assert api.delete(f"/users/{admin.user.id}/custom-roles/{role_id}").is_success
    assert api.delete(f"/roles/{role_id}").status_code == 200
