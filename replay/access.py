"""Who could read or change a record at a moment, answered from the users' own events
(invitations, roles granted and revoked, reporting lines, tokens issued and revoked,
deactivations).

Each user is taken as recorded by the moment (:func:`replay.records.record_as_of`) and
judged by the rules the write side runs on every command, so the answer cannot drift
from what the CRM enforced:

- acting at all takes an active user with a token (``commands/tokens.authenticate``);
- reading and changing an account, contact, deal, interaction, task or pipeline is what
  the permission table (``domain/permissions.py``) gives the user's roles at the moment
  for the record's owner then: ``read`` to read it, ``edit`` to change it; the ``team``
  scope reaches the users who reported to them, however indirectly, at the moment;
- custom roles count with the grants they gave at the moment (a retired one gives none);
- a user record is read by every user; changing it needs a level above the user's own,
  and nobody changes their own roles (``check_can_manage``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic

from domain.account import Account
from domain.contact import Contact
from domain.custom_role import CustomRole
from domain.deal import Deal
from domain.errors import NotPermittedError
from domain.interaction import Interaction
from domain.ownership import owner_of
from domain.permissions import Action, Grants, Resource, check
from domain.pipeline import Pipeline
from domain.roles import Authority, Role
from domain.task import Task
from domain.user import User
from replay.records import RecordNotFoundError, Records, kind_name, record_as_of

#: Users are listed from their invitations, this many notifications a read.
PAGE = 1_000

#: The row of the permission table each kind of record is judged by (users: levels).
RESOURCES: dict[type[Aggregate], Resource] = {
    Account: Resource.ACCOUNT,
    Contact: Resource.CONTACT,
    Deal: Resource.DEAL,
    Interaction: Resource.INTERACTION,
    Task: Resource.TASK,
    Pipeline: Resource.PIPELINE,
}


@dataclass(frozen=True)
class UserAccess:
    user_id: UUID
    email: str
    name: str
    roles: list[Role]
    active: bool
    tokens: int
    could_read: bool
    could_change: bool
    #: Why not, when the user could not change the record (else None).
    reason: str | None
    #: Whether the user owned (or, for a task, was assigned) the record then.
    owner: bool


@dataclass(frozen=True)
class AccessReport:
    kind: str
    record_id: UUID
    moment: datetime
    #: The record's version at the moment; None when it did not exist yet.
    version: int | None
    owner_id: UUID | None
    users: list[UserAccess]


def access_as_of(
    crm: Records, cls: type[Aggregate], record_id: UUID, moment: datetime
) -> AccessReport:
    """Every user there was at ``moment``, and what each could do to the record then.

    Raises :class:`RecordNotFoundError` if the record has never existed.
    """
    record: Aggregate | None
    try:
        record = record_as_of(crm, cls, record_id, moment=moment)
    except RecordNotFoundError as error:
        if error.moment is None:
            raise
        record = None  # it came later: nobody could touch it then
    owner_id = owner_of(record) if record is not None else None
    everyone = list(_users_as_of(crm, moment))
    teams = _teams(everyone)
    users = [
        _judge(user, teams, _custom_grants(crm, user, moment), cls, record, owner_id, moment)
        for user in everyone
    ]
    users.sort(key=lambda u: (not u.could_change, not u.could_read, u.email))
    return AccessReport(
        kind=kind_name(cls),
        record_id=record_id,
        moment=moment,
        version=None if record is None else record.version,
        owner_id=owner_id,
        users=users,
    )


def _judge(
    user: User,
    teams: dict[UUID, frozenset[UUID]],
    custom_grants: tuple[Grants, ...],
    cls: type[Aggregate],
    record: Aggregate | None,
    owner_id: UUID | None,
    moment: datetime,
) -> UserAccess:
    authority = Authority(
        user_id=user.id,
        roles=user.role_set,
        team=teams.get(user.id, frozenset()),
        custom_grants=custom_grants,
    )
    reason: str | None = None
    could_read = False
    live = user.live_tokens(moment)
    if record is None:
        reason = "the record did not exist yet"
    elif not user.active:
        reason = "deactivated"
    elif not live:
        reason = "held no token"  # none issued, or every one revoked or expired
    else:
        resource = RESOURCES.get(cls)
        could_read = resource is None or _allowed(authority, resource, Action.READ, owner_id)
        try:
            if resource is None:
                assert isinstance(record, User)
                authority.check_can_manage(record.id, record.level)
            else:
                check(authority, resource, Action.EDIT, owner_id, record.id)
        except NotPermittedError as refused:
            reason = str(refused)
    return UserAccess(
        user_id=user.id,
        email=user.email,
        name=user.name,
        roles=list(user.roles),
        active=user.active,
        tokens=len(live),
        could_read=could_read,
        could_change=reason is None,
        reason=reason,
        owner=owner_id is not None and owner_id == user.id,
    )


def _allowed(authority: Authority, resource: Resource, action: Action, owner: UUID | None) -> bool:
    try:
        check(authority, resource, action, owner)
    except NotPermittedError:
        return False
    return True


def _custom_grants(crm: Records, user: User, moment: datetime) -> tuple[Grants, ...]:
    """The grants of the custom roles the user held at the moment, as they stood then
    (a role's grants can be edited; a retired role gives none, as ``authority_of``)."""
    roles = [record_as_of(crm, CustomRole, UUID(r), moment=moment) for r in user.custom_roles]
    return tuple(role.grants for role in roles if not role.retired)


def _teams(users: list[User]) -> dict[UUID, frozenset[UUID]]:
    """Everyone who reported to each user, however indirectly, as the users stood."""
    direct: dict[UUID, set[UUID]] = {}
    for user in users:
        if user.manager_id is not None:
            direct.setdefault(user.manager_id, set()).add(user.id)
    teams: dict[UUID, frozenset[UUID]] = {}
    for manager in direct:
        found: set[UUID] = set()
        waiting = [manager]
        while waiting:
            for member in direct.get(waiting.pop(), ()):
                if member not in found and member != manager:
                    found.add(member)
                    waiting.append(member)
        teams[manager] = frozenset(found)
    return teams


def _users_as_of(crm: Records, moment: datetime) -> Iterator[User]:
    """Every user invited by ``moment``, as they stood then."""
    recorder = crm.recorder
    if not isinstance(recorder, ApplicationRecorder):
        raise TypeError("users are listed from an application recorder's notifications")
    topic = get_topic(User.Invited)
    start = 1
    while page := recorder.select_notifications(start, PAGE, topics=[topic]):
        for notification in page:
            user_id = UUID(str(notification.originator_id))
            try:
                yield record_as_of(crm, User, user_id, moment=moment)
            except RecordNotFoundError:
                continue  # invited later
        start = page[-1].id + 1
