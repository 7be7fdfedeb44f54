"""Users, their roles and API tokens; the roster of Owners."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.custom_role import CustomRole
from domain.errors import InvalidValueError, StateConflictError
from domain.roles import ADMINISTRATION, Authority, EscalationError, Role, level_of
from domain.values import check_name, key_id, normalize_email


class UserError(StateConflictError):
    """Raised when a change to a user conflicts with the user's current state."""


class UserDeactivatedError(UserError):
    """Raised when a deactivated user would be changed or would act."""


class RoleAlreadyHeldError(UserError):
    """Raised when a role is granted to a user who already holds it."""


class RoleNotHeldError(UserError):
    """Raised when a role is revoked from a user who does not hold it."""


class LastOwnerError(UserError):
    """Raised when a change would leave the CRM without an active Owner."""


class UnknownTokenError(UserError):
    """Raised when a token to revoke is not an active token of the user."""


class ReportingCycleError(UserError):
    """Raised when a user would report to themselves, directly or through others."""


class User(Aggregate):
    class Invited(Aggregate.Created):
        email: str
        name: str
        invited_by: UUID | None

    class RoleGranted(Aggregate.Event):
        role: Role
        granted_by: UUID | None

    class RoleRevoked(Aggregate.Event):
        role: Role
        revoked_by: UUID | None

    class Deactivated(Aggregate.Event):
        deactivated_by: UUID | None

    class TokenIssued(Aggregate.Event):
        class_version = 2
        token_id: UUID
        token_hash: str
        label: str
        #: The token is refused from this moment on (None: until revoked).
        expires_at: datetime | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["expires_at"] = None  # tokens issued before expiry existed never expire

    class TokenRevoked(Aggregate.Event):
        token_id: UUID

    class CustomRoleGranted(Aggregate.Event):
        role_id: UUID
        #: The role's level (:class:`CustomRoleLevelChanged` follows it): it protects the user.
        level: int
        granted_by: UUID | None

    class CustomRoleLevelChanged(Aggregate.Event):
        """A custom role held was moved to another level (saved with the role's
        ``LevelChanged``)."""

        role_id: UUID
        level: int
        previous: int

    class CustomRoleRevoked(Aggregate.Event):
        role_id: UUID
        revoked_by: UUID | None

    class ManagerChanged(Aggregate.Event):
        manager_id: UUID | None
        previous: UUID | None
        changed_by: UUID | None

    #: Whom the user reports to (None: nobody). A class default, so that users recorded
    #: (and snapshotted) before reporting lines existed load with none.
    manager_id: UUID | None = None

    @event(Invited)
    def __init__(self, email: str, name: str, invited_by: UUID | None) -> None:
        self.email = email
        self.name = name
        self.invited_by = invited_by
        self.roles: list[Role] = []
        self.active = True
        #: Token id (its ``str``) -> the hash of its secret. String keys, so that the
        #: user's snapshot is plain JSON (the transcoder takes no UUID as a key).
        self.tokens: dict[str, str] = {}

    @classmethod
    def invite(cls, email: str, name: str, role: Role, by: Authority, owners: OwnerRoster) -> User:
        by.check_can_assign(role)
        user = cls(email=normalize_email(email), name=check_name(name), invited_by=by.user_id)
        if role is Role.OWNER:
            owners.add(user.id)
        user._grant(role=role, granted_by=by.user_id)
        return user

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(self.roles)

    @property
    def authority(self) -> Authority:
        return Authority(user_id=self.id, roles=self.role_set)

    @property
    def custom_roles(self) -> dict[str, int]:
        """Custom role id (its ``str``) -> its level, for the custom roles held (a copy).
        Kept in the instance's own dict, so snapshots taken before custom roles existed
        still load, and only once one is granted, so reading changes nothing."""
        held: dict[str, int] = self.__dict__.get("custom_role_levels", {})
        return dict(held)

    @property
    def level(self) -> int:
        """The level that protects the user: the highest of their roles, custom ones too."""
        return max(level_of(self.role_set), *self.custom_roles.values(), 0)

    def grant_custom_role(self, role: CustomRole, by: Authority) -> None:
        self.check_active()
        by.check_can_manage(self.id, self.level)
        by.check_can_assign_level(role.level, role.name)
        role.check_grantable_by(by)
        if str(role.id) in self.custom_roles:
            raise RoleAlreadyHeldError(f"user already holds the custom role {role.name!r}")
        self._grant_custom(role_id=role.id, level=role.level, granted_by=by.user_id)

    @event(CustomRoleGranted)
    def _grant_custom(self, role_id: UUID, level: int, granted_by: UUID | None) -> None:
        self.__dict__.setdefault("custom_role_levels", {})[str(role_id)] = level

    def follow_custom_role_level(self, role: CustomRole) -> None:
        """Take on the level a held custom role now has: an edit of the role, which its
        editor was allowed, not a change anyone makes to this user."""
        previous = self.custom_roles.get(str(role.id))
        if previous is not None and previous != role.level:
            self._change_custom_level(role_id=role.id, level=role.level, previous=previous)

    @event(CustomRoleLevelChanged)
    def _change_custom_level(self, role_id: UUID, level: int, previous: int) -> None:
        self.__dict__["custom_role_levels"][str(role_id)] = level

    def revoke_custom_role(self, role: CustomRole, by: Authority) -> None:
        self.check_active()
        by.check_can_manage(self.id, self.level)
        by.check_can_assign_level(role.level, role.name)
        role.check_grantable_by(by)
        if str(role.id) not in self.custom_roles:
            raise RoleNotHeldError(f"user does not hold the custom role {role.name!r}")
        self._revoke_custom(role_id=role.id, revoked_by=by.user_id)

    @event(CustomRoleRevoked)
    def _revoke_custom(self, role_id: UUID, revoked_by: UUID | None) -> None:
        del self.__dict__["custom_role_levels"][str(role_id)]

    def check_active(self) -> None:
        if not self.active:
            raise UserDeactivatedError(f"user {self.id} is deactivated")

    def grant_role(self, role: Role, by: Authority, owners: OwnerRoster) -> None:
        self.check_active()
        by.check_can_manage(self.id, self.level)
        by.check_can_assign(role)
        if role in self.roles:
            raise RoleAlreadyHeldError(f"user already holds the {role.value} role")
        if role is Role.OWNER:
            owners.add(self.id)
        self._grant(role=role, granted_by=by.user_id)

    @event(RoleGranted)
    def _grant(self, role: Role, granted_by: UUID | None) -> None:
        self.roles.append(role)

    def revoke_role(self, role: Role, by: Authority, owners: OwnerRoster) -> None:
        self.check_active()
        by.check_can_manage(self.id, self.level)
        by.check_can_assign(role)
        if role not in self.roles:
            raise RoleNotHeldError(f"user does not hold the {role.value} role")
        if role is Role.OWNER:
            owners.remove(self.id)
        self._revoke(role=role, revoked_by=by.user_id)

    @event(RoleRevoked)
    def _revoke(self, role: Role, revoked_by: UUID | None) -> None:
        self.roles.remove(role)

    def deactivate(self, by: Authority, owners: OwnerRoster) -> None:
        self.check_active()
        by.check_can_manage(self.id, self.level)
        if Role.OWNER in self.roles:
            owners.remove(self.id)
        self._deactivate(deactivated_by=by.user_id)

    @event(Deactivated)
    def _deactivate(self, deactivated_by: UUID | None) -> None:
        self.active = False
        self.tokens = {}
        self.expiries.clear()

    def assign_manager(self, manager: User | None, reports: frozenset[UUID], by: Authority) -> None:
        """Make the user report to ``manager`` (None: to nobody). ``reports`` are the users
        who report to this one, however indirectly: none of them may become their manager.
        Only Admins and Owners (or the operator), who stand above the user, set their line:
        it decides whose records a manager's team scope reaches."""
        self.check_active()
        by.check_can_manage(self.id, self.level)
        if by.grant_level < ADMINISTRATION.level:
            raise EscalationError("reporting lines are set by Admins and Owners")
        manager_id = None
        if manager is not None:
            manager.check_active()
            manager_id = manager.id
            if manager_id == self.id or manager_id in reports:
                raise ReportingCycleError("a user cannot report to themselves or to their reports")
        if manager_id != self.manager_id:
            self._change_manager(
                manager_id=manager_id, previous=self.manager_id, changed_by=by.user_id
            )

    @event(ManagerChanged)
    def _change_manager(
        self, manager_id: UUID | None, previous: UUID | None, changed_by: UUID | None
    ) -> None:
        self.manager_id = manager_id

    def check_can_handle_tokens(self, by: Authority, issuing: bool = False) -> None:
        """A user handles their own tokens; otherwise only someone above them may, and
        only Admins and Owners (or the operator) issue one for someone else: a token lets
        its holder act as the user, with the user's scope and in their name."""
        if by.user_id != self.id:
            by.check_can_manage(self.id, self.level)
            if issuing and by.grant_level < ADMINISTRATION.level:
                raise EscalationError("only Admins and Owners issue tokens for someone else")

    def issue_token(
        self,
        token_id: UUID,
        token_hash: str,
        label: str,
        by: Authority,
        expires_at: datetime | None = None,
        now: datetime | None = None,
        first: bool = False,
    ) -> None:
        """Issue a token; ``first``: the one an invitation hands the inviter for the new
        user, who has acted in nothing yet."""
        self.check_active()
        self.check_can_handle_tokens(by, issuing=not first)
        if len(label) > 100:
            raise InvalidValueError("token label must be at most 100 characters")
        if expires_at is not None and now is not None and expires_at <= now:
            raise InvalidValueError("a token's expiry must lie in the future")
        self._issue_token(
            token_id=token_id, token_hash=token_hash, label=label, expires_at=expires_at
        )

    @event(TokenIssued)
    def _issue_token(
        self, token_id: UUID, token_hash: str, label: str, expires_at: datetime | None
    ) -> None:
        self.tokens[str(token_id)] = token_hash
        if expires_at is not None:
            self.expiries[str(token_id)] = expires_at

    @property
    def expiries(self) -> dict[str, datetime]:
        """Token id (its ``str``) -> when it expires, for tokens that do. Kept in the
        instance's own dict, so snapshots taken before expiry existed still load."""
        expiries: dict[str, datetime] = self.__dict__.setdefault("token_expiries", {})
        return expiries

    def token_hash(self, token_id: UUID, at: datetime) -> str | None:
        """The hash of an active token's secret at ``at``; None once revoked or expired."""
        expires_at = self.expiries.get(str(token_id))
        if expires_at is not None and at >= expires_at:
            return None
        return self.tokens.get(str(token_id))

    def live_tokens(self, at: datetime) -> list[str]:
        """The ids of the tokens that authenticated at ``at`` (issued, neither revoked
        nor expired)."""
        return [t for t in self.tokens if self.token_hash(UUID(t), at) is not None]

    def rotate_token(
        self,
        token_id: UUID,
        new_token_id: UUID,
        token_hash: str,
        by: Authority,
        expires_at: datetime | None,
        now: datetime,
    ) -> None:
        """Replace a token by a new one in one change: the new one issued, the old one
        revoked (two events, saved together)."""
        self.check_active()
        self.check_can_handle_tokens(by, issuing=True)
        if str(token_id) not in self.tokens:
            raise UnknownTokenError(f"token {token_id} is not an active token of this user")
        label = f"rotated from {token_id}"
        self.issue_token(new_token_id, token_hash, label, by, expires_at=expires_at, now=now)
        self._revoke_token(token_id=token_id)

    def revoke_token(self, token_id: UUID, by: Authority) -> None:
        self.check_can_handle_tokens(by)
        if str(token_id) not in self.tokens:
            raise UnknownTokenError(f"token {token_id} is not an active token of this user")
        self._revoke_token(token_id=token_id)

    @event(TokenRevoked)
    def _revoke_token(self, token_id: UUID) -> None:
        del self.tokens[str(token_id)]
        self.expiries.pop(str(token_id), None)


class OwnerRoster(Aggregate):
    """The set of active Owners, one per CRM: every change to it is serialised,
    so two concurrent revocations can never leave the CRM without an Owner."""

    class Started(Aggregate.Created):
        pass

    class OwnerAdded(Aggregate.Event):
        user_id: UUID

    class OwnerRemoved(Aggregate.Event):
        user_id: UUID

    @event(Started)
    def __init__(self) -> None:
        self.owners: list[UUID] = []

    @staticmethod
    def create_id() -> UUID:
        return roster_id()

    def add(self, user_id: UUID) -> None:
        if user_id not in self.owners:
            self._add(user_id=user_id)

    @event(OwnerAdded)
    def _add(self, user_id: UUID) -> None:
        self.owners.append(user_id)

    def remove(self, user_id: UUID) -> None:
        if user_id not in self.owners:
            return
        if len(self.owners) == 1:
            raise LastOwnerError("the last active Owner cannot lose the role")
        self._remove(user_id=user_id)

    @event(OwnerRemoved)
    def _remove(self, user_id: UUID) -> None:
        self.owners.remove(user_id)


def roster_id() -> UUID:
    return key_id("roster", "owners")


class Team(Aggregate):
    """The users who report directly to one manager: the reverse of ``User.manager_id``,
    so a manager's team is found without scanning every user."""

    class Started(Aggregate.Created):
        manager_id: UUID

    class MemberAdded(Aggregate.Event):
        user_id: UUID

    class MemberRemoved(Aggregate.Event):
        user_id: UUID

    @event(Started)
    def __init__(self, manager_id: UUID) -> None:
        self.manager_id = manager_id
        self.members: list[UUID] = []

    @staticmethod
    def create_id(manager_id: UUID) -> UUID:
        return team_id(manager_id)

    def add(self, user_id: UUID) -> None:
        if user_id not in self.members:
            self._add(user_id=user_id)

    @event(MemberAdded)
    def _add(self, user_id: UUID) -> None:
        self.members.append(user_id)

    def remove(self, user_id: UUID) -> None:
        if user_id in self.members:
            self._remove(user_id=user_id)

    @event(MemberRemoved)
    def _remove(self, user_id: UUID) -> None:
        self.members.remove(user_id)


def team_id(manager_id: UUID) -> UUID:
    return key_id("team", str(manager_id))
