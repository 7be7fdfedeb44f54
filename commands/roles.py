"""Custom roles: defined by a user (below their own level, within their own scopes) and
granted to or revoked from users below the granter (the rules: ``domain/custom_role.py``,
``domain/user.py``). Names are unique, whatever their case."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from commands.app import Crm
from commands.context import Context, Decision, Payload
from commands.loading import load_existing, load_target
from domain.custom_role import CustomRole, parse_grants
from domain.index import UniqueKey
from domain.permissions import Action, Resource, Scope
from domain.user import User
from domain.values import key_id

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
    name = role.name.casefold()
    key = crm.find(UniqueKey, key_id(ROLE_NAME_SCOPE, name))
    if key is None:
        key = UniqueKey(scope=ROLE_NAME_SCOPE, key=name, holder_id=role.id)
    else:
        key.claim(role.id, name)
    return Decision(role, others=[key], created={"role_id": role.id})


def grant_custom_role(cmd: GrantCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    user.grant_custom_role(load_existing(crm, CustomRole, cmd.role_id), by=ctx.actor)
    return Decision(user)


def revoke_custom_role(cmd: RevokeCustomRole, crm: Crm, ctx: Context) -> Decision:
    user = load_target(crm, User, cmd.user_id, ctx)
    user.revoke_custom_role(load_existing(crm, CustomRole, cmd.role_id), by=ctx.actor)
    return Decision(user)
