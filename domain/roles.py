"""Built-in roles, their levels, and who may hand which role to whom.

A user may grant or revoke only roles strictly below their own level, and only
to users strictly below their own level; nobody changes their own roles. The
Auditor role reads everything and changes nothing, so it gives no power to grant.
The system authority is the operator at the command line (``crm init``, ``crm users``),
who stands above every role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from uuid import UUID

from domain.errors import NotPermittedError


class Role(Enum):
    OWNER = "owner"
    ADMIN = "admin"
    SENIOR_MANAGER = "senior_manager"
    MANAGER = "manager"
    SALES_REP = "sales_rep"
    AUDITOR = "auditor"

    @property
    def level(self) -> int:
        return _LEVELS[self]

    @property
    def read_only(self) -> bool:
        return self is Role.AUDITOR


_LEVELS = {
    Role.OWNER: 50,
    Role.ADMIN: 40,
    # Only Admins and Owners may appoint someone who can read everything.
    Role.AUDITOR: 35,
    Role.SENIOR_MANAGER: 30,
    Role.MANAGER: 20,
    Role.SALES_REP: 10,
}

SYSTEM_LEVEL = 1_000

#: The lowest role that administers users: sets reporting lines and issues tokens for
#: others (each decides whose records, and in whose name, someone acts).
ADMINISTRATION = Role.ADMIN


class EscalationError(NotPermittedError):
    """Raised when a user tries to hand out or take away power they do not hold above."""


class SelfRoleChangeError(EscalationError):
    """Raised when a user tries to change their own roles or deactivate themselves."""


class ReadOnlyError(NotPermittedError):
    """Raised when a read-only user (an Auditor) tries to change anything."""


def _writes(role_grants: Mapping[Any, Mapping[Any, Any]]) -> bool:
    """Whether grants in the table's shape reach any record for an action but reading."""
    return any(
        getattr(action, "value", action) != "read" and getattr(scope, "value", scope) != "none"
        for actions in role_grants.values()
        for action, scope in actions.items()
    )


def level_of(roles: frozenset[Role]) -> int:
    """The level that protects a user: the highest of all their roles."""
    return max((role.level for role in roles), default=0)


@dataclass(frozen=True)
class Authority:
    """Who is acting, with the roles they hold at the moment of acting."""

    user_id: UUID | None
    roles: frozenset[Role] = field(default_factory=frozenset)
    is_system: bool = False
    #: The users who report to this one, directly or through others (their records are
    #: this user's team's; see :mod:`domain.permissions`).
    team: frozenset[UUID] = field(default_factory=frozenset)
    #: Grants of custom roles held, shaped as :data:`domain.permissions.Grants`.
    custom_grants: tuple[Mapping[Any, Mapping[Any, Any]], ...] = ()

    @classmethod
    def system(cls) -> Authority:
        return cls(user_id=None, is_system=True)

    @property
    def grant_level(self) -> int:
        """The level below which this actor may hand out roles. Read-only roles give none."""
        if self.is_system:
            return SYSTEM_LEVEL
        return max((r.level for r in self.roles if not r.read_only), default=0)

    @property
    def read_only(self) -> bool:
        """Whether the actor may change nothing: no built-in role that writes, and no custom
        role that grants more than reading."""
        return (
            not self.is_system
            and all(role.read_only for role in self.roles)
            and not any(_writes(role_grants) for role_grants in self.custom_grants)
        )

    def check_can_assign_level(self, level: int, name: str) -> None:
        """Refuse unless a (custom) role at ``level`` sits strictly below this actor."""
        self.check_can_write()
        if level >= self.grant_level:
            raise EscalationError(f"only users above the level of {name!r} may grant or revoke it")

    def check_can_see_access(self) -> None:
        """Who could read or change a record, at any moment, is for Owners and Auditors:
        those who answer for access."""
        if not self.is_system and not ({Role.OWNER, Role.AUDITOR} & self.roles):
            raise NotPermittedError("only Owners and Auditors see who could access a record")

    def check_can_write(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                "read-only users (Auditors, or users without a role) change nothing"
            )

    def check_can_assign(self, role: Role) -> None:
        """Refuse unless ``role`` sits strictly below this actor's own level."""
        self.check_can_write()
        if role.level >= self.grant_level:
            raise EscalationError(f"only users above {role.value} may grant or revoke it")

    def check_can_manage(self, user_id: UUID, user_level: int) -> None:
        """Refuse unless the target user (at ``user_level``: the highest of their roles,
        built-in or custom) sits strictly below this actor and is not them."""
        self.check_can_write()
        if user_id == self.user_id:
            raise SelfRoleChangeError("nobody changes their own roles or deactivates themselves")
        if user_level >= self.grant_level:
            raise EscalationError("only users above a user's level may manage them")
