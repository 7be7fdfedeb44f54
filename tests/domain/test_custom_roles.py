"""Custom roles: below their creator's level, within their creator's scopes; their level
protects their holders; they give no power to grant."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.custom_role import CustomRole, parse_grants
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource, Scope, scope_of
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
