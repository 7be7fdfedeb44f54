"""Custom roles: defined by a user (below their own level, within their own scopes) and
granted to or revoked from users below the granter (the rules: ``domain/custom_role.py``,
``domain/user.py``). Names are unique, whatever their case."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from commands.app import Crm
from commands.context import Context, Decision, Payload
from commands.loading import load_ref, load_target
from commands.unique_keys import claim_key
from domain.custom_role import CustomRole, parse_grants
from domain.permissions import Action, Resource, Scope
from domain.user import User

ROLE_NAME_SCOPE = "role-names"


class CustomRoleSpec(Payload):
    name: str = Field(min_length=1, max_length=100)
    level: int = Field(ge=1, le=1000, description="strictly below your own level")
    #: Per resource, per action, a scope; what is left out is ``none``.
    grants: dict[Resource, dict[Action, Scope]] = Field(
        description='e.g. {"deal": {"read": "team", "edit": "own"}}'
    )


class CreateCustomRole(CustomRoleSpec):
    #: Governed by the level rules (domain/roles.py), not the permission table.
    PERMIT = None


class CustomRoleBody(Payload):
    role_id: UUID


class GrantCustomRole(CustomRoleBody):
    PERMIT = None
    user_id: UUID


class RevokeCustomRole(CustomRoleBody):
    PERMIT = None
    user_id: UUID


def create_custom_role(cmd: CreateCustomRole, crm: Crm, ctx: Context) -> Decision:
    role_grants = parse_grants(
        {
            r.value: {a.value: s.value for a, s in actions.items()}
            for r, actions in cmd.grants.items()
        }
    )
    role = CustomRole.define(cmd.name, cmd.level, role_grants, by=ctx.actor)
    key = claim_key(crm, ROLE_NAME_SCOPE, role.name.casefold(), role.id)
    return Decision(role, others=[key], created={"role_id": role.id})


def grant_custom_role(cmd: GrantCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    user.grant_custom_role(load_ref(crm, CustomRole, cmd.role_id), by=ctx.actor)
    return Decision(user)


def revoke_custom_role(cmd: RevokeCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    user.revoke_custom_role(load_ref(crm, CustomRole, cmd.role_id), by=ctx.actor)
    return Decision(user)
