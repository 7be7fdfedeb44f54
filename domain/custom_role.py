"""Custom roles: a name, a level and grants in the permission table's shape, created,
edited and retired by events. A custom role always sits strictly below the level of
whoever defined or last edited it and grants nothing beyond their own scopes; its level
protects its holders as a built-in role's does (:meth:`domain.user.User.level`). It gives
no power to grant: handing out roles and custom roles stays with the built-in roles
(``Authority.grant_level``).

Editing a role changes what its holders may do at once, so only someone who could revoke
it from each of them and grant it again as edited may edit it. A retired role is granted
no more, and is retired only once no active user holds it: every holder loses it by a
revocation of their own, under the usual rules, rather than all at once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, RecordRemovedError, StateConflictError
from domain.permissions import ACTIONS, Action, Grants, Resource, Scope, grants, scope_of
from domain.roles import ADMINISTRATION, Authority, EscalationError, Role
from domain.values import Removable, check_name, check_removal_reason

#: The lowest level a custom role may have.
MIN_LEVEL = 1

#: Grants as stored in the event: resource -> action -> scope, by their values.
StoredGrants = dict[str, dict[str, str]]


def parse_grants(given: Mapping[str, Mapping[str, str]]) -> Grants:
    """Grants from their values (``{"deal": {"read": "team"}}``); what is left out is
    ``none``. Refused (:class:`InvalidValueError`) if a name is unknown or an action is not
    one of the resource's."""
    rows: dict[Resource, tuple[Scope, ...]] = {}
    for resource_name, actions in given.items():
        try:
            resource = Resource(resource_name)
            scopes = {Action(a): Scope(s) for a, s in actions.items()}
        except ValueError as error:
            raise InvalidValueError(f"grants: {error}") from None
        extra = set(scopes) - set(ACTIONS[resource])
        if extra:
            names = ", ".join(sorted(a.value for a in extra))
            raise InvalidValueError(f"grants: {resource.value} has no action {names}")
        rows[resource] = tuple(scopes.get(a, Scope.NONE) for a in ACTIONS[resource])
    return grants(rows)


def stored(role_grants: Grants) -> StoredGrants:
    return {
        resource.value: {action.value: scope.value for action, scope in actions.items()}
        for resource, actions in role_grants.items()
    }


class CustomRoleError(StateConflictError):
    """Raised when a change to a custom role conflicts with its current state."""


class CustomRoleRetiredError(CustomRoleError, RecordRemovedError):
    """Raised when a retired custom role would be granted or changed."""


class CustomRoleHeldError(CustomRoleError):
    """Raised when a custom role that active users still hold would be retired."""


class CustomRole(Aggregate, Removable):
    class Created(Aggregate.Created):
        name: str
        level: int
        grants: StoredGrants
        created_by: UUID | None

    class Renamed(Aggregate.Event):
        name: str
        previous: str

    class LevelChanged(Aggregate.Event):
        level: int
        previous: int

    class GrantsChanged(Aggregate.Event):
        grants: StoredGrants
        previous: StoredGrants

    class HolderAdded(Aggregate.Event):
        user_id: UUID

    class HolderRemoved(Aggregate.Event):
        user_id: UUID

    class Retired(Aggregate.Event):
        reason: str

    @event(Created)
    def __init__(
        self, name: str, level: int, grants: StoredGrants, created_by: UUID | None
    ) -> None:
        self.name = name
        self.level = level
        self.stored_grants = grants
        self.created_by = created_by
        #: The users it was granted to and not revoked from (their ids' ``str``), in the
        #: order they got it, deactivated users too.
        self.holder_ids: list[str] = []

    @classmethod
    def define(cls, name: str, level: int, role_grants: Grants, by: Authority) -> CustomRole:
        by.check_can_write()
        check_level(level, by, "its creator's")
        check_within(role_grants, by, "its creator's")
        return cls(
            name=check_name(name), level=level, grants=stored(role_grants), created_by=by.user_id
        )

    @property
    def grants(self) -> Grants:
        return parse_grants(self.stored_grants)

    @property
    def retired(self) -> bool:
        return self.removed

    def check_not_removed(self) -> None:
        if self.removed:
            raise CustomRoleRetiredError(f"custom role {self.name!r} is retired")

    def check_grantable_by(self, by: Authority) -> None:
        """Nobody hands out (or takes back) scopes wider than their own, even through a
        role someone above them defined."""
        check_within(self.grants, by, "its granter's")

    def check_changeable_by(self, by: Authority) -> None:
        """Only someone above the role's level, whose own scopes cover all it grants, edits
        or retires it: who could revoke it."""
        by.check_can_assign_level(self.level, self.name)
        self.check_grantable_by(by)

    def readable_by(self, by: Authority, held: Collection[str]) -> bool:
        """Whether ``by`` may see the role: who administers users or reads everything (an
        Auditor) sees every role; anyone else the roles they hold (``held``: the ids, as
        ``str``, of the custom roles they hold), defined, or could grant."""
        if by.is_system or Role.AUDITOR in by.roles or by.grant_level >= ADMINISTRATION.level:
            return True
        if str(self.id) in held or (by.user_id is not None and by.user_id == self.created_by):
            return True
        return not by.read_only and self.level < by.grant_level and within(self.grants, by)

    def edit(
        self,
        by: Authority,
        holder_levels: Mapping[UUID, int],
        name: str | None = None,
        level: int | None = None,
        role_grants: Grants | None = None,
    ) -> None:
        """Rename the role, move it to another level, replace its grants (None: unchanged).
        A new level or grants are bounded as when the role was defined, by the editor's
        own, and change what every holder may do: the editor must stand above each active
        holder (``holder_levels``: their ids and levels), as to revoke it from them."""
        self.check_not_removed()
        self.check_changeable_by(by)
        name = check_name(name) if name is not None else self.name
        level = self.level if level is None else level
        new_grants = self.stored_grants if role_grants is None else stored(role_grants)
        if level != self.level or new_grants != self.stored_grants:
            check_level(level, by, "its editor's")
            check_within(parse_grants(new_grants), by, "its editor's")
            for holder_id, holder_level in holder_levels.items():
                by.check_can_manage(holder_id, holder_level)
        if name != self.name:
            self._rename(name=name, previous=self.name)
        if level != self.level:
            self._change_level(level=level, previous=self.level)
        if new_grants != self.stored_grants:
            self._change_grants(grants=new_grants, previous=self.stored_grants)

    @event(Renamed)
    def _rename(self, name: str, previous: str) -> None:
        self.name = name

    @event(LevelChanged)
    def _change_level(self, level: int, previous: int) -> None:
        self.level = level

    @event(GrantsChanged)
    def _change_grants(self, grants: StoredGrants, previous: StoredGrants) -> None:
        self.stored_grants = grants

    def add_holder(self, user_id: UUID) -> None:
        """Record that the role was granted to ``user_id`` (the grant itself is the
        user's event, saved with this one)."""
        self.check_not_removed()
        if str(user_id) not in self.holder_ids:
            self._add_holder(user_id=user_id)

    @event(HolderAdded)
    def _add_holder(self, user_id: UUID) -> None:
        self.holder_ids.append(str(user_id))

    def remove_holder(self, user_id: UUID) -> None:
        if str(user_id) in self.holder_ids:
            self._remove_holder(user_id=user_id)

    @event(HolderRemoved)
    def _remove_holder(self, user_id: UUID) -> None:
        self.holder_ids.remove(str(user_id))

    def retire(self, by: Authority, active_holders: Collection[UUID], reason: str = "") -> None:
        """Retire the role for good: it is granted no more and changes no more. Refused
        while ``active_holders`` (the active users among its holders) is not empty."""
        self.check_not_removed()
        self.check_changeable_by(by)
        if active_holders:
            raise CustomRoleHeldError(
                f"custom role {self.name!r} is held by {len(active_holders)} active "
                "user(s): revoke it from them first"
            )
        self._retire(reason=check_removal_reason(reason))

    @event(Retired)
    def _retire(self, reason: str) -> None:
        self.removed = True


def check_level(level: int, by: Authority, whose: str) -> None:
    """Refuse a level below :data:`MIN_LEVEL` or not strictly below ``by``'s own."""
    if level < MIN_LEVEL:
        raise InvalidValueError(f"a custom role's level is at least {MIN_LEVEL}")
    if level >= by.grant_level:
        raise EscalationError(f"a custom role sits strictly below {whose} level ({by.grant_level})")


def within(role_grants: Grants, by: Authority) -> bool:
    """Whether ``role_grants`` reach no further than ``by``'s own scopes."""
    return all(
        scope.rank <= scope_of(by, resource, action).rank
        for resource, actions in role_grants.items()
        for action, scope in actions.items()
    )


def check_within(role_grants: Grants, by: Authority, whose: str) -> None:
    """Refuse grants wider than ``by``'s own scopes."""
    for resource, actions in role_grants.items():
        for action, scope in actions.items():
            own = scope_of(by, resource, action)
            if scope.rank > own.rank:
                raise EscalationError(
                    f"{action.value} {resource.value}: a custom role grants at most "
                    f"{whose} own scope ({own.value}), not {scope.value}"
                )
