"""Commands on users: invitations, roles, deactivation, API tokens.

The role rules themselves live on :class:`domain.user.User` and :mod:`domain.roles`.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import EmailStr, Field

from commands.app import Crm
from commands.context import Context, Decision, Payload, UtcDatetime
from commands.loading import load_existing, load_target
from commands.tokens import NewToken, new_token
from commands.unique_keys import claim_key
from domain.custom_role import CustomRole
from domain.index import UniqueKey
from domain.roles import Authority, Role
from domain.user import OwnerRoster, Team, User, roster_id, team_id
from domain.values import normalize_email

USER_EMAIL_SCOPE = "user-emails"


class InviteUser(Payload):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Role
    issue_token: bool = Field(default=True, description="issue a first API token, shown once")


class RoleBody(Payload):
    role: Role


class GrantRole(RoleBody):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID


class RevokeRole(RoleBody):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID


class DeactivateUser(Payload):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID


class ManagerBody(Payload):
    #: Whom the user reports to; null: to nobody.
    manager_id: UUID | None


class AssignManager(ManagerBody):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID


class TokenRequest(Payload):
    label: str = Field(default="", max_length=100)
    #: From this moment the token is refused (401); none: it lasts until revoked.
    expires_at: UtcDatetime | None = None


class IssueToken(TokenRequest):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID


class RotationRequest(Payload):
    #: The new token's expiry (none: it lasts until revoked).
    expires_at: UtcDatetime | None = None


class RotateToken(RotationRequest):
    """Issue a new token and revoke ``token_id`` in one change."""

    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None

    user_id: UUID
    token_id: UUID


class RevokeToken(Payload):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    user_id: UUID
    token_id: UUID


def owner_roster(crm: Crm) -> OwnerRoster:
    return crm.find(OwnerRoster, roster_id()) or OwnerRoster()


def invite_user(cmd: InviteUser, crm: Crm, ctx: Context) -> Decision:
    email = normalize_email(cmd.email)
    roster = owner_roster(crm)
    user = User.invite(email, cmd.name, cmd.role, by=ctx.actor, owners=roster)
    others: list[UniqueKey | OwnerRoster] = [claim_key(crm, USER_EMAIL_SCOPE, email, user.id)]
    if roster.pending_events:
        others.append(roster)
    decision = Decision(user, others=others, created={"user_id": user.id})
    if cmd.issue_token:
        token = new_token(user.id)
        user.issue_token(token.token_id, token.token_hash, "first token", by=ctx.actor, first=True)
        decision.created["token_id"] = token.token_id
        decision.shown_once["token"] = token.plaintext
    return decision


def grant_role(cmd: GrantRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    roster = owner_roster(crm)
    user.grant_role(cmd.role, by=ctx.actor, owners=roster)
    return Decision(user, others=[roster] if roster.pending_events else [])


def revoke_role(cmd: RevokeRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    roster = owner_roster(crm)
    user.revoke_role(cmd.role, by=ctx.actor, owners=roster)
    return Decision(user, others=[roster] if roster.pending_events else [])


def deactivate_user(cmd: DeactivateUser, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    roster = owner_roster(crm)
    user.deactivate(by=ctx.actor, owners=roster)
    return Decision(user, others=[roster] if roster.pending_events else [])


def reports_of(crm: Crm, manager_id: UUID) -> frozenset[UUID]:
    """Everyone who reports to ``manager_id``, directly or through others."""
    found: set[UUID] = set()
    waiting = [manager_id]
    while waiting:
        team = crm.find(Team, team_id(waiting.pop()))
        for member in team.members if team else ():
            if member not in found and member != manager_id:
                found.add(member)
                waiting.append(member)
    return frozenset(found)


def authority_of(crm: Crm, user: User) -> Authority:
    """What ``user`` may do now: their roles, the grants of their custom roles, and their
    team, for the permission table."""
    held = [crm.load(CustomRole, UUID(role_id)) for role_id in user.custom_roles]
    # A retired role gives nothing, should anyone still hold it (deactivated, or granted
    # before roles recorded their holders).
    custom = tuple(role.grants for role in held if not role.retired)
    return Authority(
        user_id=user.id, roles=user.role_set, team=reports_of(crm, user.id), custom_grants=custom
    )


def assign_manager(cmd: AssignManager, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    previous = user.manager_id
    manager = load_existing(crm, User, cmd.manager_id) if cmd.manager_id else None
    user.assign_manager(manager, reports_of(crm, user.id), by=ctx.actor)
    others: list[Team] = []
    if user.manager_id != previous:
        if previous is not None:
            old = crm.find(Team, team_id(previous))
            if old is not None:
                old.remove(user.id)
                others.append(old)
        if user.manager_id is not None:
            new = crm.find(Team, team_id(user.manager_id)) or Team(manager_id=user.manager_id)
            new.add(user.id)
            others.append(new)
    return Decision(user, others=others)


def token_issued(user: User, token: NewToken) -> Decision:
    """The reply to a command that issued ``token``: its id, and its secret shown once."""
    return Decision(
        user, created={"token_id": token.token_id}, shown_once={"token": token.plaintext}
    )


def issue_token(cmd: IssueToken, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    token = new_token(user.id)
    user.issue_token(
        token.token_id,
        token.token_hash,
        cmd.label,
        by=ctx.actor,
        expires_at=cmd.expires_at,
        now=ctx.now,
    )
    return token_issued(user, token)


def rotate_token(cmd: RotateToken, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    token = new_token(user.id)
    user.rotate_token(
        cmd.token_id,
        token.token_id,
        token.token_hash,
        by=ctx.actor,
        expires_at=cmd.expires_at,
        now=ctx.now,
    )
    return token_issued(user, token)


def revoke_token(cmd: RevokeToken, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    user.revoke_token(cmd.token_id, by=ctx.actor)
    return Decision(user)
