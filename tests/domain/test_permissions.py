"""The permission table and what it answers: scopes, the widest of several roles, teams."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.permissions import (
    ACTIONS,
    PERMISSIONS,
    Action,
    DeniedError,
    Resource,
    Scope,
    check,
    may,
    scope_of,
    visible_owners,
)
from domain.roles import Authority, Role

ME, REPORT, STRANGER = uuid4(), uuid4(), uuid4()


def actor(*roles: Role) -> Authority:
    return Authority(ME, frozenset(roles), team=frozenset({REPORT}))


def test_the_table_names_a_scope_for_every_role_resource_and_action() -> None:
    for role in Role:
        for resource, actions in ACTIONS.items():
            assert set(PERMISSIONS[role][resource]) == set(actions), (role, resource)


def test_owners_and_admins_reach_everything_and_auditors_change_nothing() -> None:
    for resource, actions in ACTIONS.items():
        for action in actions:
            assert scope_of(actor(Role.OWNER), resource, action) is Scope.ALL
            assert scope_of(actor(Role.ADMIN), resource, action) is Scope.ALL
            expected = Scope.ALL if action is Action.READ else Scope.NONE
            assert scope_of(actor(Role.AUDITOR), resource, action) is expected


def test_own_team_and_all_reach_what_they_say() -> None:
    rep, manager = actor(Role.SALES_REP), actor(Role.MANAGER)
    # A rep edits only their own deals; a manager their team's, themselves included.
    assert may(rep, Resource.DEAL, Action.EDIT, ME)
    assert not may(rep, Resource.DEAL, Action.EDIT, REPORT)
    assert may(manager, Resource.DEAL, Action.EDIT, REPORT)
    assert may(manager, Resource.DEAL, Action.EDIT, ME)
    assert not may(manager, Resource.DEAL, Action.EDIT, STRANGER)
    assert visible_owners(manager, Resource.DEAL, Action.READ) == frozenset({ME, REPORT})
    # Everyone reads every account; nobody below Admin changes pipelines.
    assert visible_owners(rep, Resource.ACCOUNT, Action.READ) is None
    assert visible_owners(manager, Resource.PIPELINE, Action.EDIT) == frozenset()
    # A record without an owner is reached only by ``all``.
    assert not may(manager, Resource.DEAL, Action.READ, None)


def test_several_roles_give_the_widest_scope_and_the_system_reaches_all() -> None:
    assert scope_of(actor(Role.SALES_REP, Role.MANAGER), Resource.DEAL, Action.READ) is Scope.TEAM
    both = actor(Role.SALES_REP, Role.AUDITOR)
    assert scope_of(both, Resource.DEAL, Action.READ) is Scope.ALL
    assert scope_of(both, Resource.DEAL, Action.EDIT) is Scope.OWN
    assert scope_of(Authority.system(), Resource.AUDIT, Action.READ) is Scope.ALL
    assert scope_of(Authority(ME), Resource.ACCOUNT, Action.READ) is Scope.NONE


def test_a_refusal_names_what_was_attempted() -> None:
    target = uuid4()
    with pytest.raises(DeniedError) as refused:
        check(actor(Role.SALES_REP), Resource.DEAL, Action.EDIT, STRANGER, target)
    assert (refused.value.resource, refused.value.action) == (Resource.DEAL, Action.EDIT)
    assert refused.value.target == target
    assert "only own" in str(refused.value)
