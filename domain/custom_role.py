"""Custom roles: a name, a level and grants in the permission table's shape, created by
events. A custom role always sits strictly below its creator's level and grants nothing
beyond its creator's own scopes; its level protects its holders as a built-in role's does
(:meth:`domain.user.User.level`). It gives no power to grant: handing out roles and
custom roles stays with the built-in roles (``Authority.grant_level``)."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError
from domain.permissions import ACTIONS, Action, Grants, Resource, Scope, grants, scope_of
from domain.roles import Authority, EscalationError
from domain.values import check_name

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


class CustomRole(Aggregate):
    class Created(Aggregate.Created):
        name: str
        level: int
        grants: StoredGrants
        created_by: UUID | None

    @event(Created)
    def __init__(
        self, name: str, level: int, grants: StoredGrants, created_by: UUID | None
    ) -> None:
        self.name = name
        self.level = level
        self.stored_grants = grants
        self.created_by = created_by

    @classmethod
    def define(cls, name: str, level: int, role_grants: Grants, by: Authority) -> CustomRole:
        by.check_can_write()
        if level < MIN_LEVEL:
            raise InvalidValueError(f"a custom role's level is at least {MIN_LEVEL}")
        if level >= by.grant_level:
            raise EscalationError(
                f"a custom role sits strictly below its creator's level ({by.grant_level})"
            )
        check_within(role_grants, by, "its creator's")
        return cls(
            name=check_name(name), level=level, grants=stored(role_grants), created_by=by.user_id
        )

    @property
    def grants(self) -> Grants:
        return parse_grants(self.stored_grants)

    def check_grantable_by(self, by: Authority) -> None:
        """Nobody hands out (or takes back) scopes wider than their own, even through a
        role someone above them defined."""
        check_within(self.grants, by, "its granter's")


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
