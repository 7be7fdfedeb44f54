"""Custom roles: below their creator's (or editor's) level, within their scopes; their
level protects their holders; they give no power to grant; a retired one is granted no
more."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.custom_role import (
    MIN_LEVEL,
    CustomRole,
    CustomRoleHeldError,
    CustomRoleRetiredError,
    parse_grants,
)
from domain.errors import InvalidValueError
from domain.permissions import PERMISSIONS, Action, Grants, Resource, Scope, grants, scope_of
from domain.roles import Authority, EscalationError, ReadOnlyError, Role
from domain.user import OwnerRoster, User

DEALS_OWN = parse_grants({"deal": {"read": "own", "edit": "own"}})


def as_role(role: Role) -> Authority:
    return Authority(uuid4(), frozenset({role}))


def test_a_custom_role_below_its_creator_keeps_its_grants_and_leaves_the_rest_none() -> None:
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=as_role(Role.MANAGER))

    assert (role.name, role.level) == ("Helper", 15)
    assert role.grants[Resource.DEAL][Action.EDIT] is Scope.OWN
    assert role.grants[Resource.ACCOUNT][Action.READ] is Scope.NONE


@pytest.mark.parametrize("level", [20, 21, 50])
def test_a_custom_role_at_or_above_its_creators_level_is_refused(level: int) -> None:
    with pytest.raises(EscalationError):
        CustomRole.define("Peer", level, DEALS_OWN, by=as_role(Role.MANAGER))


def test_a_custom_role_wider_than_its_creators_scopes_is_refused() -> None:
    with pytest.raises(EscalationError, match="read deal"):
        CustomRole.define("Wide", 5, parse_grants({"deal": {"read": "all"}}), as_role(Role.MANAGER))


def test_an_auditor_defines_no_custom_role() -> None:
    with pytest.raises(ReadOnlyError):
        CustomRole.define("Reader", 5, parse_grants({}), by=as_role(Role.AUDITOR))


@pytest.mark.parametrize(
    "grants",
    [{"invoice": {"read": "all"}}, {"audit": {"edit": "all"}}, {"deal": {"read": "most"}}],
)
def test_grants_outside_the_table_are_invalid(grants: dict[str, dict[str, str]]) -> None:
    with pytest.raises(InvalidValueError):
        parse_grants(grants)


def test_a_custom_roles_level_protects_its_holder_and_gives_no_power_to_grant() -> None:
    owners = OwnerRoster()
    owner = Authority.system()
    holder = User.invite("h@example.com", "H", Role.SALES_REP, by=owner, owners=owners)
    high = CustomRole.define("High", 25, DEALS_OWN, by=as_role(Role.OWNER))
    holder.grant_custom_role(high, by=owner)
    holder.revoke_role(Role.SALES_REP, by=owner, owners=owners)
    holding = Authority(holder.id, custom_grants=(high.grants,))

    assert holder.level == 25
    with pytest.raises(EscalationError):
        holder.deactivate(by=as_role(Role.MANAGER), owners=owners)
    assert holding.grant_level == 0
    assert not holding.read_only  # it edits its own deals
    assert scope_of(holding, Resource.DEAL, Action.EDIT) is Scope.OWN
    low = CustomRole.define("Low", 5, DEALS_OWN, by=as_role(Role.OWNER))
    other = User.invite("o@example.com", "O", Role.SALES_REP, by=owner, owners=owners)
    with pytest.raises(EscalationError):
        other.grant_custom_role(low, by=holding)


# -- editing and retiring ------------------------------------------------------------------


def held_by(role: CustomRole, *users: User) -> None:
    for user in users:
        user.grant_custom_role(role, by=Authority.system())
        role.add_holder(user.id)


def a_rep(email: str = "rep@example.com") -> User:
    return User.invite(email, "Rep", Role.SALES_REP, by=Authority.system(), owners=OwnerRoster())


def test_an_edit_renames_moves_and_regrants_with_one_event_each() -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)
    wider = parse_grants({"deal": {"read": "team", "edit": "own"}})

    role.edit(manager, {}, name="Deal helper", level=12, role_grants=wider)

    renamed, moved, regranted = role.collect_events()[1:]
    assert isinstance(renamed, CustomRole.Renamed)
    assert renamed.previous == "Helper"
    assert isinstance(moved, CustomRole.LevelChanged)
    assert (moved.level, moved.previous) == (12, 15)
    assert isinstance(regranted, CustomRole.GrantsChanged)
    assert (role.name, role.level) == ("Deal helper", 12)
    assert role.grants[Resource.DEAL][Action.READ] is Scope.TEAM


def test_an_edit_that_changes_nothing_records_nothing() -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)
    role.collect_events()

    role.edit(manager, {}, name="Helper", level=15, role_grants=DEALS_OWN)

    assert role.collect_events() == []


@pytest.mark.parametrize("level", [20, 21, 50])
def test_an_edit_to_or_above_the_editors_level_is_refused(level: int) -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)

    with pytest.raises(EscalationError):
        role.edit(manager, {}, level=level)
    assert role.level == 15


def test_an_edit_wider_than_the_editors_scopes_is_refused() -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)

    with pytest.raises(EscalationError, match="read deal"):
        role.edit(manager, {}, role_grants=parse_grants({"deal": {"read": "all"}}))
    assert role.grants == DEALS_OWN


def test_a_role_above_the_editor_or_wider_than_their_scopes_is_not_theirs_to_edit() -> None:
    owner = as_role(Role.OWNER)
    high = CustomRole.define("High", 25, DEALS_OWN, by=owner)
    wide = CustomRole.define("Wide", 5, parse_grants({"deal": {"read": "all"}}), by=owner)

    for role in (high, wide):
        with pytest.raises(EscalationError):
            role.edit(as_role(Role.MANAGER), {}, name="Mine")
        with pytest.raises(EscalationError):
            role.retire(as_role(Role.MANAGER), [])


def test_new_grants_or_level_need_the_editor_above_every_active_holder() -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)
    senior = a_rep()
    senior.grant_role(Role.SENIOR_MANAGER, by=Authority.system(), owners=OwnerRoster())
    holders = {senior.id: senior.level}

    role.edit(manager, holders, name="Renamed")  # a name changes nobody's authority
    with pytest.raises(EscalationError):
        role.edit(manager, holders, level=10)
    with pytest.raises(EscalationError):
        role.edit(manager, holders, role_grants=parse_grants({}))
    assert (role.name, role.level, role.grants) == ("Renamed", 15, DEALS_OWN)


def test_holders_follow_a_new_level() -> None:
    owner = as_role(Role.OWNER)
    role = CustomRole.define("High", 25, DEALS_OWN, by=owner)
    holder = a_rep()
    held_by(role, holder)

    role.edit(owner, {holder.id: holder.level}, level=12)
    holder.follow_custom_role_level(role)

    assert holder.level == 12
    assert holder.custom_roles == {str(role.id): 12}
    holder.deactivate(by=as_role(Role.MANAGER), owners=OwnerRoster())  # 20 > 12 now


def test_a_role_held_by_an_active_user_is_not_retired_and_a_retired_one_is_not_granted() -> None:
    manager = as_role(Role.MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=manager)
    holder = a_rep()
    held_by(role, holder)

    with pytest.raises(CustomRoleHeldError):
        role.retire(manager, [holder.id])
    role.retire(manager, [], reason="merged into Partner manager")

    assert role.retired
    with pytest.raises(CustomRoleRetiredError):
        role.add_holder(uuid4())
    with pytest.raises(CustomRoleRetiredError):
        role.edit(manager, {}, name="Back")
    with pytest.raises(CustomRoleRetiredError):
        role.retire(manager, [])


def test_who_sees_a_role() -> None:
    creator = as_role(Role.SENIOR_MANAGER)
    role = CustomRole.define("Helper", 15, DEALS_OWN, by=creator)
    rep = as_role(Role.SALES_REP)

    assert role.readable_by(creator, held=[])
    assert all(role.readable_by(as_role(r), held=[]) for r in (Role.OWNER, Role.ADMIN))
    assert role.readable_by(as_role(Role.AUDITOR), held=[])
    assert role.readable_by(as_role(Role.MANAGER), held=[])  # could grant it
    assert not role.readable_by(rep, held=[])  # the role sits above a rep
    assert role.readable_by(rep, held=[str(role.id)])
    low_but_wide = CustomRole.define("Wide", 5, parse_grants({"deal": {"read": "all"}}), creator)
    assert not low_but_wide.readable_by(as_role(Role.MANAGER), held=[])


def widened(role_grants: Grants) -> Grants | None:
    """``role_grants`` with the first scope short of ``all`` made ``all`` (None: all are)."""
    for resource, actions in role_grants.items():
        for action, scope in actions.items():
            if scope is not Scope.ALL:
                return {**role_grants, resource: {**actions, action: Scope.ALL}}
    return None


@pytest.mark.parametrize("built_in", [r for r in Role if not r.read_only], ids=lambda r: r.value)
def test_each_role_edits_and_retires_up_to_its_level_and_scopes_from_the_table(
    built_in: Role,
) -> None:
    editor = as_role(built_in)
    own_scopes = PERMISSIONS[built_in]
    role = CustomRole.define("Just below", built_in.level - 1, own_scopes, by=editor)

    with pytest.raises(EscalationError):
        role.edit(editor, {}, level=built_in.level)
    wider = widened(own_scopes)
    if wider is not None:
        with pytest.raises(EscalationError):
            role.edit(editor, {}, role_grants=wider)
    role.edit(editor, {}, level=MIN_LEVEL, role_grants=grants({}))
    role.retire(editor, [])

    assert (role.level, role.retired) == (MIN_LEVEL, True)


def test_a_read_only_role_edits_and_retires_nothing() -> None:
    role = CustomRole.define("Reader", 5, parse_grants({}), by=as_role(Role.OWNER))

    with pytest.raises(ReadOnlyError):
        role.edit(as_role(Role.AUDITOR), {}, name="Mine")
    with pytest.raises(ReadOnlyError):
        role.retire(as_role(Role.AUDITOR), [])
