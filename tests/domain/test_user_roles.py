"""Users, roles and tokens: nobody hands out or takes away power they do not hold above.

Levels: Owner 50 > Admin 40 > Auditor 35 > Senior Manager 30 > Manager 20 > Sales Rep 10.
The Auditor is read-only: its level protects it, but gives it no power to grant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from domain.errors import InvalidValueError, NotPermittedError, StateConflictError
from domain.roles import (
    SYSTEM_LEVEL,
    Authority,
    EscalationError,
    ReadOnlyError,
    Role,
    SelfRoleChangeError,
    level_of,
)
from domain.user import (
    LastOwnerError,
    OwnerRoster,
    RoleAlreadyHeldError,
    RoleNotHeldError,
    UnknownTokenError,
    User,
    UserDeactivatedError,
    roster_id,
)
from tests.domain.helpers import (
    assert_no_new_events,
    event_types,
    given,
    new_events,
    only_event,
    refused,
)

SYSTEM = Authority.system()
OWNER, ADMIN, AUDITOR, SENIOR, MANAGER, REP = (
    Role.OWNER,
    Role.ADMIN,
    Role.AUDITOR,
    Role.SENIOR_MANAGER,
    Role.MANAGER,
    Role.SALES_REP,
)


@pytest.fixture
def owners() -> OwnerRoster:
    return given(OwnerRoster())


def member(owners: OwnerRoster, *roles: Role) -> User:
    """A user invited by the operator, holding ``roles``; nothing pending anywhere."""
    user = User.invite(f"{uuid4().hex[:8]}@example.com", "A. Member", roles[0], SYSTEM, owners)
    for role in roles[1:]:
        user.grant_role(role, SYSTEM, owners)
    given(owners)
    return given(user)


def roleless(owners: OwnerRoster) -> User:
    user = member(owners, REP)
    user.revoke_role(REP, SYSTEM, owners)
    return given(user)


def deactivated(user: User, owners: OwnerRoster) -> User:
    user.deactivate(SYSTEM, owners)
    given(owners)
    return given(user)


# --- invite ---------------------------------------------------------------------


def test_inviting_a_user_records_the_user_and_the_role(owners: OwnerRoster) -> None:
    admin = member(owners, ADMIN)

    user = User.invite(" Ann@Example.COM ", " Ann ", MANAGER, admin.authority, owners)

    invited, granted = new_events(user)
    assert isinstance(invited, User.Invited)
    assert isinstance(granted, User.RoleGranted)
    assert (invited.email, invited.name, invited.invited_by) == ("ann@example.com", "Ann", admin.id)
    assert (granted.role, granted.granted_by) == (MANAGER, admin.id)
    assert user.active
    assert_no_new_events(owners)


def test_the_operator_invites_an_owner_onto_the_owner_roster(owners: OwnerRoster) -> None:
    user = User.invite("ann@example.com", "Ann", OWNER, SYSTEM, owners)

    assert only_event(owners, OwnerRoster.OwnerAdded).user_id == user.id
    assert event_types(user) == [User.Invited, User.RoleGranted]


@pytest.mark.parametrize(
    ("actor", "role"),
    [
        (MANAGER, MANAGER),
        (MANAGER, SENIOR),
        (SENIOR, AUDITOR),
        (ADMIN, ADMIN),
        (ADMIN, OWNER),
        (OWNER, OWNER),
        (REP, REP),
    ],
)
def test_nobody_invites_a_user_at_or_above_their_own_level(
    owners: OwnerRoster, actor: Role, role: Role
) -> None:
    inviter = member(owners, actor)

    with refused(EscalationError, owners, inviter):
        User.invite("ann@example.com", "Ann", role, inviter.authority, owners)


# --- grant ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "role"),
    [
        (SENIOR, MANAGER),
        (SENIOR, REP),
        (MANAGER, REP),
        (ADMIN, AUDITOR),
        (ADMIN, SENIOR),
        (OWNER, ADMIN),
        (OWNER, AUDITOR),
    ],
)
def test_a_user_grants_roles_below_their_own_level(
    owners: OwnerRoster, actor: Role, role: Role
) -> None:
    granter, user = member(owners, actor), roleless(owners)

    user.grant_role(role, granter.authority, owners)

    granted = only_event(user, User.RoleGranted)
    assert (granted.role, granted.granted_by) == (role, granter.id)
    assert user.role_set == {role}


@pytest.mark.parametrize(
    ("actor", "role"),
    [
        (REP, REP),
        (MANAGER, MANAGER),
        (MANAGER, SENIOR),
        (SENIOR, SENIOR),
        (SENIOR, ADMIN),
        (SENIOR, AUDITOR),
        (SENIOR, OWNER),
        (ADMIN, ADMIN),
        (ADMIN, OWNER),
        (OWNER, OWNER),
    ],
)
def test_a_user_cannot_grant_a_role_at_or_above_their_own_level(
    owners: OwnerRoster, actor: Role, role: Role
) -> None:
    granter, user = member(owners, actor), roleless(owners)

    with refused(EscalationError, user, owners, match=f"only users above {role.value}"):
        user.grant_role(role, granter.authority, owners)
    assert user.role_set == frozenset()


def test_the_operator_can_make_an_owner(owners: OwnerRoster) -> None:
    user = member(owners, ADMIN)

    user.grant_role(OWNER, SYSTEM, owners)

    granted = only_event(user, User.RoleGranted)
    assert (granted.role, granted.granted_by) == (OWNER, None)
    assert only_event(owners, OwnerRoster.OwnerAdded).user_id == user.id


def test_a_role_already_held_cannot_be_granted_again(owners: OwnerRoster) -> None:
    admin, user = member(owners, ADMIN), member(owners, MANAGER)

    with refused(RoleAlreadyHeldError, user, match="already holds the manager role"):
        user.grant_role(MANAGER, admin.authority, owners)


def test_an_auditor_cannot_grant_anything_despite_its_level(owners: OwnerRoster) -> None:
    auditor, user = member(owners, AUDITOR), roleless(owners)
    assert AUDITOR.level > SENIOR.level
    assert auditor.authority.grant_level == 0

    for role in (REP, MANAGER, SENIOR):
        with refused(ReadOnlyError, user, owners, match="read-only"):
            user.grant_role(role, auditor.authority, owners)
    with refused(ReadOnlyError, owners):
        User.invite("ann@example.com", "Ann", REP, auditor.authority, owners)


def test_the_auditor_role_adds_no_power_to_grant(owners: OwnerRoster) -> None:
    rep_and_auditor, user = member(owners, REP, AUDITOR), roleless(owners)

    with refused(EscalationError, user):
        user.grant_role(REP, rep_and_auditor.authority, owners)


def test_a_user_without_roles_cannot_write(owners: OwnerRoster) -> None:
    nobody, user = roleless(owners), roleless(owners)

    with pytest.raises(ReadOnlyError):
        nobody.authority.check_can_write()
    with refused(ReadOnlyError, user, owners):
        user.grant_role(REP, nobody.authority, owners)


# --- revoke ---------------------------------------------------------------------


def test_a_superior_revokes_a_role_below_their_level(owners: OwnerRoster) -> None:
    senior, user = member(owners, SENIOR), member(owners, MANAGER, REP)

    user.revoke_role(MANAGER, senior.authority, owners)

    revoked = only_event(user, User.RoleRevoked)
    assert (revoked.role, revoked.revoked_by) == (MANAGER, senior.id)
    assert user.role_set == {REP}


@pytest.mark.parametrize(
    ("actor", "target"),
    [
        (REP, REP),
        (MANAGER, MANAGER),
        (MANAGER, SENIOR),
        (SENIOR, AUDITOR),
        (ADMIN, ADMIN),
        (ADMIN, OWNER),
        (OWNER, OWNER),
    ],
)
def test_a_role_cannot_be_revoked_from_a_user_at_or_above_ones_level(
    owners: OwnerRoster, actor: Role, target: Role
) -> None:
    revoker, user = member(owners, actor), member(owners, target)

    with refused(EscalationError, user, owners, match="above a user's level"):
        user.revoke_role(target, revoker.authority, owners)
    assert target in user.roles


@pytest.mark.parametrize(
    ("actor", "role"),
    [(MANAGER, MANAGER), (SENIOR, SENIOR), (SENIOR, AUDITOR), (ADMIN, ADMIN), (ADMIN, OWNER)],
)
def test_a_role_at_or_above_ones_own_level_cannot_be_revoked_even_from_a_lower_user(
    owners: OwnerRoster, actor: Role, role: Role
) -> None:
    revoker, rep = member(owners, actor), member(owners, REP)

    # Refused as an escalation before anyone learns whether the user holds the role.
    with refused(EscalationError, rep, owners, match=f"only users above {role.value}"):
        rep.revoke_role(role, revoker.authority, owners)


def test_a_role_not_held_cannot_be_revoked(owners: OwnerRoster) -> None:
    admin, user = member(owners, ADMIN), member(owners, REP)

    with refused(RoleNotHeldError, user, match="does not hold the manager role"):
        user.revoke_role(MANAGER, admin.authority, owners)


def test_an_auditor_cannot_revoke_anything(owners: OwnerRoster) -> None:
    auditor, user = member(owners, AUDITOR), member(owners, REP)

    with refused(ReadOnlyError, user):
        user.revoke_role(REP, auditor.authority, owners)


# --- oneself --------------------------------------------------------------------


@pytest.mark.parametrize("role", [OWNER, ADMIN, SENIOR, MANAGER, REP])
def test_nobody_changes_their_own_roles_or_deactivates_themselves(
    owners: OwnerRoster, role: Role
) -> None:
    user = member(owners, role)

    with refused(SelfRoleChangeError, user, owners, match="their own roles"):
        user.grant_role(REP if role is not REP else MANAGER, user.authority, owners)
    with refused(SelfRoleChangeError, user, owners):
        user.revoke_role(role, user.authority, owners)
    with refused(SelfRoleChangeError, user, owners):
        user.deactivate(user.authority, owners)
    assert issubclass(SelfRoleChangeError, EscalationError)


# --- owners ---------------------------------------------------------------------


def test_the_last_owner_cannot_lose_the_role_even_to_the_operator(owners: OwnerRoster) -> None:
    owner = member(owners, OWNER)

    with refused(LastOwnerError, owner, owners, match="last active Owner"):
        owner.revoke_role(OWNER, SYSTEM, owners)
    assert owner.role_set == {OWNER}


def test_the_last_owner_cannot_be_deactivated_even_by_the_operator(owners: OwnerRoster) -> None:
    owner = member(owners, OWNER)

    with refused(LastOwnerError, owner, owners):
        owner.deactivate(SYSTEM, owners)
    assert owner.active


def test_one_of_two_owners_can_lose_the_role(owners: OwnerRoster) -> None:
    first, second = member(owners, OWNER), member(owners, OWNER)
    assert owners.owners == [first.id, second.id]

    first.revoke_role(OWNER, SYSTEM, owners)

    assert only_event(first, User.RoleRevoked).role is OWNER
    assert only_event(owners, OwnerRoster.OwnerRemoved).user_id == first.id
    assert owners.owners == [second.id]
    with refused(LastOwnerError, second, owners):
        second.revoke_role(OWNER, SYSTEM, owners)


def test_one_of_two_owners_can_be_deactivated(owners: OwnerRoster) -> None:
    first, second = member(owners, OWNER), member(owners, OWNER)

    second.deactivate(SYSTEM, owners)

    assert only_event(second, User.Deactivated).deactivated_by is None
    assert only_event(owners, OwnerRoster.OwnerRemoved).user_id == second.id
    with refused(LastOwnerError, first, owners):
        first.deactivate(SYSTEM, owners)


def test_an_owner_cannot_demote_or_deactivate_another_owner(owners: OwnerRoster) -> None:
    first, second = member(owners, OWNER), member(owners, OWNER)

    with refused(EscalationError, second, owners):
        second.revoke_role(OWNER, first.authority, owners)
    with refused(EscalationError, second, owners):
        second.deactivate(first.authority, owners)


def test_the_owner_roster_records_each_owner_once(owners: OwnerRoster) -> None:
    user_id = uuid4()
    assert owners.id == roster_id() == OwnerRoster.create_id()

    owners.add(user_id)
    owners.add(user_id)
    owners.remove(uuid4())

    assert only_event(owners, OwnerRoster.OwnerAdded).user_id == user_id


# --- deactivation ---------------------------------------------------------------


def test_a_superior_deactivates_a_user_and_their_tokens_lapse(owners: OwnerRoster) -> None:
    admin, user = member(owners, ADMIN), member(owners, MANAGER)
    token_id = uuid4()
    user.issue_token(token_id, "hash", "laptop", user.authority)
    given(user)

    user.deactivate(admin.authority, owners)

    assert only_event(user, User.Deactivated).deactivated_by == admin.id
    assert not user.active
    assert user.tokens == {}
    with refused(UnknownTokenError, user):
        user.revoke_token(token_id, SYSTEM)


@pytest.mark.parametrize(
    ("actor", "target"),
    [
        (REP, REP),
        (MANAGER, MANAGER),
        (MANAGER, SENIOR),
        (SENIOR, AUDITOR),
        (ADMIN, ADMIN),
        (ADMIN, OWNER),
    ],
)
def test_a_user_at_or_above_ones_level_cannot_be_deactivated(
    owners: OwnerRoster, actor: Role, target: Role
) -> None:
    other, user = member(owners, actor), member(owners, target)

    with refused(EscalationError, user, owners, match="above a user's level"):
        user.deactivate(other.authority, owners)
    assert user.active


def test_an_auditor_cannot_deactivate_anyone(owners: OwnerRoster) -> None:
    auditor, rep = member(owners, AUDITOR), member(owners, REP)

    with refused(ReadOnlyError, rep):
        rep.deactivate(auditor.authority, owners)


def test_a_deactivated_user_refuses_changes(owners: OwnerRoster) -> None:
    user = deactivated(member(owners, MANAGER), owners)

    with refused(UserDeactivatedError, user, owners, match="deactivated"):
        user.grant_role(REP, SYSTEM, owners)
    with refused(UserDeactivatedError, user, owners):
        user.revoke_role(MANAGER, SYSTEM, owners)
    with refused(UserDeactivatedError, user, owners):
        user.deactivate(SYSTEM, owners)
    with refused(UserDeactivatedError, user):
        user.issue_token(uuid4(), "hash", "laptop", user.authority)


# --- tokens ---------------------------------------------------------------------


def test_a_user_issues_and_revokes_their_own_tokens(owners: OwnerRoster) -> None:
    user = member(owners, REP)
    token_id = uuid4()

    user.issue_token(token_id, "sha256:abc", "laptop", user.authority)
    issued = only_event(user, User.TokenIssued)
    user.revoke_token(token_id, user.authority)

    assert (issued.token_id, issued.token_hash, issued.label) == (token_id, "sha256:abc", "laptop")
    assert only_event(user, User.TokenRevoked).token_id == token_id
    assert user.tokens == {}


def test_a_read_only_user_still_handles_their_own_tokens(owners: OwnerRoster) -> None:
    auditor = member(owners, AUDITOR)

    auditor.issue_token(uuid4(), "hash", "reports", auditor.authority)

    only_event(auditor, User.TokenIssued)


def test_an_admin_issues_and_a_superior_revokes_tokens_for_a_user_below(
    owners: OwnerRoster,
) -> None:
    admin, manager, rep = member(owners, ADMIN), member(owners, MANAGER), member(owners, REP)
    token_id = uuid4()

    rep.issue_token(token_id, "hash", "import", admin.authority)
    rep.revoke_token(token_id, manager.authority)

    assert event_types(rep) == [User.TokenIssued, User.TokenRevoked]


def test_below_admin_nobody_issues_a_token_to_act_as_someone_else(owners: OwnerRoster) -> None:
    """A token acts with its user's scope and in their name: a Manager who minted one for
    a rep outside their team would reach the rep's records as the rep."""
    senior, rep = member(owners, SENIOR), member(owners, REP)
    token_id = uuid4()
    rep.issue_token(token_id, "hash", "laptop", rep.authority)
    given(rep)

    with refused(EscalationError, rep):
        rep.issue_token(uuid4(), "hash", "mine now", senior.authority)
    with refused(EscalationError, rep):
        rep.rotate_token(token_id, uuid4(), "hash", senior.authority, None, datetime.now(UTC))


@pytest.mark.parametrize(
    ("actor", "target"), [(MANAGER, MANAGER), (REP, MANAGER), (ADMIN, OWNER), (OWNER, OWNER)]
)
def test_a_peer_or_junior_cannot_handle_a_users_tokens(
    owners: OwnerRoster, actor: Role, target: Role
) -> None:
    other, user = member(owners, actor), member(owners, target)
    token_id = uuid4()
    user.issue_token(token_id, "hash", "laptop", user.authority)
    given(user)

    with refused(EscalationError, user):
        user.issue_token(uuid4(), "hash", "mine now", other.authority)
    with refused(EscalationError, user):
        user.revoke_token(token_id, other.authority)
    assert str(token_id) in user.tokens


def test_an_auditor_cannot_handle_anothers_tokens(owners: OwnerRoster) -> None:
    auditor, rep = member(owners, AUDITOR), member(owners, REP)

    with refused(ReadOnlyError, rep):
        rep.issue_token(uuid4(), "hash", "laptop", auditor.authority)


def test_an_unknown_token_cannot_be_revoked(owners: OwnerRoster) -> None:
    user = member(owners, REP)

    with refused(UnknownTokenError, user, match="not an active token"):
        user.revoke_token(uuid4(), user.authority)


def test_a_token_label_has_at_most_a_hundred_characters(owners: OwnerRoster) -> None:
    user = member(owners, REP)

    with refused(InvalidValueError, user):
        user.issue_token(uuid4(), "hash", "x" * 101, user.authority)


# --- authority ------------------------------------------------------------------


def test_the_levels_order_the_roles() -> None:
    assert [r.level for r in (OWNER, ADMIN, AUDITOR, SENIOR, MANAGER, REP)] == [
        50,
        40,
        35,
        30,
        20,
        10,
    ]
    assert level_of(frozenset({REP, AUDITOR})) == 35
    assert level_of(frozenset()) == 0
    assert SYSTEM.grant_level == SYSTEM_LEVEL > OWNER.level
    assert not SYSTEM.read_only


def test_refusals_fall_into_the_right_families() -> None:
    not_permitted = (EscalationError, SelfRoleChangeError, ReadOnlyError)
    conflicts = (LastOwnerError, RoleAlreadyHeldError, RoleNotHeldError, UserDeactivatedError)
    assert all(issubclass(error, NotPermittedError) for error in not_permitted)
    assert all(issubclass(error, StateConflictError) for error in conflicts)
