"""Reporting lines: whom a user reports to, and the team that follows, on both stores."""

from __future__ import annotations

import httpx
import pytest

from commands.app import Crm
from commands.handlers import execute
from commands.users import AssignManager, authority_of, reports_of
from domain.errors import NotPermittedError, StateConflictError
from domain.roles import Role
from domain.user import User
from tests.conftest import Person, invite


def assign(crm: Crm, by: Person, user: Person, manager: Person | None) -> None:
    manager_id = manager.user.id if manager else None
    execute(crm, AssignManager(user_id=user.user.id, manager_id=manager_id), by.ctx)


def test_a_managers_team_is_everyone_below_them_however_indirectly(crm: Crm, owner: Person) -> None:
    senior = invite(crm, "senior@example.com", Role.SENIOR_MANAGER)
    manager = invite(crm, "manager@example.com", Role.MANAGER)
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    assign(crm, owner, manager, senior)
    assign(crm, owner, rep, manager)
    assert reports_of(crm, senior.user.id) == {manager.user.id, rep.user.id}
    assert reports_of(crm, manager.user.id) == {rep.user.id}
    assert reports_of(crm, rep.user.id) == frozenset()
    assert authority_of(crm, crm.load(User, senior.user.id)).team == {
        manager.user.id,
        rep.user.id,
    }
    assert crm.load(User, rep.user.id).manager_id == manager.user.id

    # Moving the rep to the senior manager takes them off the manager's team.
    assign(crm, owner, rep, senior)
    assert reports_of(crm, manager.user.id) == frozenset()
    assert reports_of(crm, senior.user.id) == {manager.user.id, rep.user.id}
    assign(crm, owner, rep, None)
    assert reports_of(crm, senior.user.id) == {manager.user.id}
    assert crm.load(User, rep.user.id).manager_id is None


def test_nobody_reports_to_themselves_or_to_their_reports(crm: Crm, owner: Person) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER)
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    assign(crm, owner, rep, manager)
    before = crm.position()
    for user, boss in ((manager, manager), (manager, rep)):
        with pytest.raises(StateConflictError, match="report to themselves"):
            assign(crm, owner, user, boss)
    assert crm.position() == before


def test_only_admins_and_owners_set_a_line(crm: Crm, owner: Person) -> None:
    """A line decides whose records a team scope reaches: a Manager who could move a rep
    under themselves would take over the rep's records."""
    admin = invite(crm, "admin@example.com", Role.ADMIN)
    senior = invite(crm, "senior@example.com", Role.SENIOR_MANAGER)
    manager = invite(crm, "manager@example.com", Role.MANAGER)
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    before = crm.position()
    for by, user, boss in (
        (manager, rep, manager),  # poaching a rep
        (senior, manager, senior),  # pulling a whole subtree
        (manager, manager, None),  # themselves
        (admin, owner, admin),  # someone above them
    ):
        with pytest.raises(NotPermittedError):
            assign(crm, by, user, boss)
    assert crm.position() == before
    assign(crm, admin, rep, manager)
    assert reports_of(crm, manager.user.id) == {rep.user.id}


def test_the_line_is_set_and_read_over_http(api: httpx.Client, crm: Crm) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER)
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    reply = api.put(f"/users/{rep.user.id}/manager", json={"manager_id": str(manager.user.id)})
    assert reply.status_code == 200, reply.text
    assert api.get(f"/users/{rep.user.id}").json()["manager_id"] == str(manager.user.id)
    cycle = api.put(f"/users/{manager.user.id}/manager", json={"manager_id": str(rep.user.id)})
    assert cycle.status_code == 409
    assert cycle.headers["content-type"] == "application/problem+json"
    assert api.put(f"/users/{rep.user.id}/manager", json={"manager_id": None}).status_code == 200
    assert api.get(f"/users/{rep.user.id}").json()["manager_id"] is None
