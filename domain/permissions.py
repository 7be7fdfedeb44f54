"""The permission table: for each role, what each command and each read may touch.

Levels in the style of EspoCRM: a role reaches ``all`` records of a kind, its ``team``'s
(the records owned by the user or by anyone who reports to them, however indirectly),
its ``own`` (owned by the user), or ``none``. A record's owner is its ``owner_id``
(accounts, contacts, deals), its ``assignee_id`` (tasks) or whoever logged it
(interactions); an audit-log row's is the actor who caused it. A user holding several
roles (built-in or custom) gets the widest scope any of them gives.

This one table drives the checks (commands and reads) and the documentation
(``crm permissions`` prints it; the README shows it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from uuid import UUID

from domain.errors import NotPermittedError
from domain.roles import Authority, Role


class Scope(Enum):
    NONE = "none"
    OWN = "own"
    TEAM = "team"
    ALL = "all"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def widest(self, other: Scope) -> Scope:
        return self if self.rank >= other.rank else other


_RANKS = {Scope.NONE: 0, Scope.OWN: 1, Scope.TEAM: 2, Scope.ALL: 3}


class Resource(Enum):
    ACCOUNT = "account"
    CONTACT = "contact"
    DEAL = "deal"
    INTERACTION = "interaction"
    TASK = "task"
    PIPELINE = "pipeline"
    AUDIT = "audit"
    ANALYTICS = "analytics"


class Action(Enum):
    READ = "read"
    CREATE = "create"
    EDIT = "edit"
    REMOVE = "remove"
    #: GDPR: erase a contact's personal data, or export everything held about them.
    ERASE = "erase"


#: The actions each kind of resource has (interactions are corrected or retracted, which
#: is editing; the audit log and analytics are only read).
ACTIONS: Mapping[Resource, tuple[Action, ...]] = {
    Resource.ACCOUNT: (Action.READ, Action.CREATE, Action.EDIT, Action.REMOVE),
    Resource.CONTACT: (Action.READ, Action.CREATE, Action.EDIT, Action.REMOVE, Action.ERASE),
    Resource.DEAL: (Action.READ, Action.CREATE, Action.EDIT, Action.REMOVE),
    Resource.INTERACTION: (Action.READ, Action.CREATE, Action.EDIT),
    Resource.TASK: (Action.READ, Action.CREATE, Action.EDIT),
    Resource.PIPELINE: (Action.READ, Action.CREATE, Action.EDIT),
    Resource.AUDIT: (Action.READ,),
    Resource.ANALYTICS: (Action.READ,),
}

Grants = Mapping[Resource, Mapping[Action, Scope]]

ALL, TEAM, OWN, NONE = Scope.ALL, Scope.TEAM, Scope.OWN, Scope.NONE


def grants(table: Mapping[Resource, tuple[Scope, ...]]) -> dict[Resource, dict[Action, Scope]]:
    """A role's grants from one row per resource: its scopes in the order of ``ACTIONS``;
    a resource left out gets ``none`` for every action."""
    result: dict[Resource, dict[Action, Scope]] = {}
    for resource, actions in ACTIONS.items():
        scopes = table.get(resource, (NONE,) * len(actions))
        if len(scopes) != len(actions):
            raise ValueError(f"{resource.value}: {len(actions)} scopes expected")
        result[resource] = dict(zip(actions, scopes, strict=True))
    return result


_EVERYTHING = grants({resource: (ALL,) * len(actions) for resource, actions in ACTIONS.items()})

#: The table. Columns per resource, in the order of ``ACTIONS``: read, create, edit, remove.
PERMISSIONS: Mapping[Role, Grants] = {
    Role.OWNER: _EVERYTHING,
    Role.ADMIN: _EVERYTHING,
    # Reads everything, changes nothing.
    Role.AUDITOR: grants(
        {resource: (ALL,) + (NONE,) * (len(actions) - 1) for resource, actions in ACTIONS.items()}
    ),
    Role.SENIOR_MANAGER: grants(
        {
            Resource.ACCOUNT: (ALL, ALL, ALL, TEAM),
            Resource.CONTACT: (ALL, ALL, ALL, TEAM, NONE),
            Resource.DEAL: (ALL, TEAM, TEAM, TEAM),
            Resource.INTERACTION: (ALL, ALL, TEAM),
            Resource.TASK: (ALL, ALL, TEAM),
            Resource.PIPELINE: (ALL, NONE, NONE),
            Resource.AUDIT: (TEAM,),
            Resource.ANALYTICS: (ALL,),
        }
    ),
    Role.MANAGER: grants(
        {
            Resource.ACCOUNT: (ALL, TEAM, TEAM, TEAM),
            Resource.CONTACT: (ALL, TEAM, TEAM, TEAM, NONE),
            Resource.DEAL: (TEAM, TEAM, TEAM, TEAM),
            Resource.INTERACTION: (TEAM, TEAM, TEAM),
            Resource.TASK: (TEAM, TEAM, TEAM),
            Resource.PIPELINE: (ALL, NONE, NONE),
            Resource.AUDIT: (NONE,),
            Resource.ANALYTICS: (TEAM,),
        }
    ),
    Role.SALES_REP: grants(
        {
            Resource.ACCOUNT: (ALL, OWN, OWN, NONE),
            Resource.CONTACT: (TEAM, OWN, OWN, NONE, NONE),
            Resource.DEAL: (OWN, OWN, OWN, NONE),
            Resource.INTERACTION: (OWN, OWN, OWN),
            Resource.TASK: (OWN, OWN, OWN),
            Resource.PIPELINE: (ALL, NONE, NONE),
            Resource.AUDIT: (NONE,),
            Resource.ANALYTICS: (OWN,),
        }
    ),
}


def scope_in(all_grants: Iterable[Grants], resource: Resource, action: Action) -> Scope:
    """The widest scope any of ``all_grants`` gives for ``action`` on ``resource``."""
    scope = Scope.NONE
    for role_grants in all_grants:
        scope = scope.widest(role_grants.get(resource, {}).get(action, Scope.NONE))
    return scope


class DeniedError(NotPermittedError):
    """Raised when the permission table refuses an actor an action on a record.

    Carries what was attempted, so the refusal can be recorded for auditors."""

    def __init__(
        self,
        message: str,
        resource: Resource,
        action: Action,
        target: UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.resource = resource
        self.action = action
        self.target = target


def scope_of(actor: Authority, resource: Resource, action: Action) -> Scope:
    """The scope the permission table gives ``actor`` (the system authority: all)."""
    if actor.is_system:
        return Scope.ALL
    return scope_in(
        [*(PERMISSIONS[role] for role in actor.roles), *actor.custom_grants], resource, action
    )


def visible_owners(actor: Authority, resource: Resource, action: Action) -> frozenset[UUID] | None:
    """The owners whose records ``actor`` may reach: ``None`` for every record, an empty set
    for none."""
    scope = scope_of(actor, resource, action)
    if scope is Scope.ALL:
        return None
    if scope is Scope.NONE or actor.user_id is None:
        return frozenset()
    if scope is Scope.OWN:
        return frozenset({actor.user_id})
    return actor.team | {actor.user_id}


def may(actor: Authority, resource: Resource, action: Action, owner_id: UUID | None) -> bool:
    owners = visible_owners(actor, resource, action)
    return owners is None or owner_id in owners


def check(
    actor: Authority,
    resource: Resource,
    action: Action,
    owner_id: UUID | None,
    target: UUID | None = None,
) -> None:
    """Refuse (:class:`DeniedError`) unless the table lets ``actor`` do ``action`` to a
    ``resource`` owned by ``owner_id``."""
    if not may(actor, resource, action, owner_id):
        scope = scope_of(actor, resource, action)
        reach = "no" if scope is Scope.NONE else f"only {scope.value}"
        raise DeniedError(
            f"{action.value} {resource.value}: your roles reach {reach} records",
            resource,
            action,
            target,
        )
