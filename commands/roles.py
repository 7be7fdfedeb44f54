"""Custom roles: defined and edited by a user (below their own level, within their own
scopes), granted to or revoked from users below the granter, retired once nobody active
holds them (the rules: ``domain/custom_role.py``, ``domain/user.py``). Names are unique,
whatever their case.

Every grant and revocation is also recorded on the role (its holders), so that a grant
and an edit or a retirement of the same role never both commit: they meet on the role's
version, and the later one gets a conflict."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from pydantic import Field

from commands.app import Crm
from commands.context import Context, Decision, Payload
from commands.import_store import ids_with_topics, load_many
from commands.loading import load_existing, load_target
from commands.unique_keys import claim_key, release_key
from domain.custom_role import CustomRole, parse_grants
from domain.errors import InvalidValueError
from domain.permissions import Action, Grants, Resource, Scope
from domain.user import User

ROLE_NAME_SCOPE = "role-names"

#: Per resource, per action, a scope; what is left out is ``none``.
GrantsSpec = dict[Resource, dict[Action, Scope]]
GRANTS_EXAMPLE = '{"deal": {"read": "team", "edit": "own"}}'


class CustomRoleSpec(Payload):
    name: str = Field(min_length=1, max_length=100)
    level: int = Field(ge=1, le=1000, description="strictly below your own level")
    grants: GrantsSpec = Field(description=f"e.g. {GRANTS_EXAMPLE}; what is left out is none")


class CreateCustomRole(CustomRoleSpec):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None


class CustomRoleChanges(Payload):
    """What to change; a field left out stays as it is."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    level: int | None = Field(default=None, ge=1, le=1000, description="below your own level")
    grants: GrantsSpec | None = Field(
        default=None,
        description=f"replaces every grant, e.g. {GRANTS_EXAMPLE}; what is left out is none",
    )


class EditCustomRole(CustomRoleChanges):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    role_id: UUID


class RetireCustomRole(Payload):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None
    role_id: UUID
    reason: str = Field(default="", max_length=1000)


class CustomRoleBody(Payload):
    role_id: UUID


class GrantCustomRole(CustomRoleBody):
    PERMIT = None
    user_id: UUID


class RevokeCustomRole(CustomRoleBody):
    PERMIT = None
    user_id: UUID


def grants_of(spec: Mapping[Resource, Mapping[Action, Scope]]) -> Grants:
    return parse_grants(
        {r.value: {a.value: s.value for a, s in actions.items()} for r, actions in spec.items()}
    )


def create_custom_role(cmd: CreateCustomRole, crm: Crm, ctx: Context) -> Decision:
    role = CustomRole.define(cmd.name, cmd.level, grants_of(cmd.grants), by=ctx.actor)
    key = claim_key(crm, ROLE_NAME_SCOPE, role.name.casefold(), role.id)
    return Decision(role, others=[key], created={"role_id": role.id})


def holders_of(crm: Crm, role: CustomRole) -> list[User]:
    """Every user who holds ``role``: those it recorded (``HolderAdded``), and any it was
    granted to before roles recorded their holders, found from the users' own grants (a
    scan of the grant events: editing or retiring a role is rare)."""
    granted = ids_with_topics(crm, [get_topic(User.CustomRoleGranted)])
    candidates = {UUID(user_id) for user_id in role.holder_ids} | granted
    users = load_many(crm, candidates).values()
    held = [u for u in users if isinstance(u, User) and str(role.id) in u.custom_roles]
    return sorted(held, key=lambda user: str(user.id))


def edit_custom_role(cmd: EditCustomRole, crm: Crm, ctx: Context) -> Decision:
    cleared = [f for f in ("name", "level", "grants") if getattr(cmd, f) is None]
    cleared = [f for f in cleared if f in cmd.model_fields_set]
    if cleared:
        raise InvalidValueError(f"a custom role's {', '.join(cleared)} cannot be cleared")
    role = load_target(crm, CustomRole, cmd.role_id, ctx)
    holders = holders_of(crm, role)
    previous_name = role.name
    role.edit(
        ctx.actor,
        {user.id: user.level for user in holders if user.active},
        name=cmd.name,
        level=cmd.level,
        role_grants=None if cmd.grants is None else grants_of(cmd.grants),
    )
    others: list[Aggregate] = []
    if role.name.casefold() != previous_name.casefold():
        others.append(claim_key(crm, ROLE_NAME_SCOPE, role.name.casefold(), role.id))
        released = release_key(crm, ROLE_NAME_SCOPE, previous_name.casefold(), role.id)
        others.extend([released] if released is not None else [])
    for user in holders:
        user.follow_custom_role_level(role)
        others.extend([user] if user.pending_events else [])
    return Decision(role, others=others)


def retire_custom_role(cmd: RetireCustomRole, crm: Crm, ctx: Context) -> Decision:
    role = load_target(crm, CustomRole, cmd.role_id, ctx)
    active = [user.id for user in holders_of(crm, role) if user.active]
    role.retire(ctx.actor, active, reason=cmd.reason)
    return Decision(role)


def grant_custom_role(cmd: GrantCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    role = load_existing(crm, CustomRole, cmd.role_id)
    user.grant_custom_role(role, by=ctx.actor)
    role.add_holder(user.id)
    return Decision(user, others=[role])


def revoke_custom_role(cmd: RevokeCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    # A retired role can still be taken back (from a holder deactivated when it was
    # retired, or granted before roles recorded their holders): its level counts until.
    role = crm.load(CustomRole, cmd.role_id)
    user.revoke_custom_role(role, by=ctx.actor)
    role.remove_holder(user.id)
    return Decision(user, others=[role] if role.pending_events else [])
