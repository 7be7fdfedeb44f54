"""Who could read or change a record at a moment, answered from the users' own events
(invitations, roles granted and revoked, tokens issued and revoked, deactivations).

Each user is taken as recorded by the moment (:func:`replay.records.record_as_of`) and
judged by the checks the write side runs on every command (``domain/roles.py``), so the
answer cannot drift from what the CRM enforced:

- acting at all takes an active user with a token (``commands/tokens.authenticate``);
- every user who can act reads every record (scoped reads come with the permission model
  of the security issue, and this module with them);
- changing a record takes a role that may write (``Authority.check_can_write``: not an
  Auditor alone); a pipeline needs Admin or above (``check_at_least``); a user record
  needs a level above the user's own, and nobody changes their own roles
  (``check_can_manage``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic

from domain.errors import NotPermittedError
from domain.pipeline import Pipeline
from domain.roles import Role
from domain.user import User
from replay.records import RecordNotFoundError, Records, kind_name, record_as_of

#: Users are listed from their invitations, this many notifications a read.
PAGE = 1_000


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
    owner_id = _owner_of(record)
    users = [_judge(user, cls, record, owner_id, moment) for user in _users_as_of(crm, moment)]
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
    cls: type[Aggregate],
    record: Aggregate | None,
    owner_id: UUID | None,
    moment: datetime,
) -> UserAccess:
    authority = user.authority
    reason: str | None = None
    live = user.live_tokens(moment)
    could_act = user.active and bool(live)
    if record is None:
        reason = "the record did not exist yet"
    elif not user.active:
        reason = "deactivated"
    elif not live:
        reason = "held no token"  # none issued, or every one revoked or expired
    else:
        try:
            authority.check_can_write()
            if cls is Pipeline:
                authority.check_at_least(Role.ADMIN)
            if isinstance(record, User):
                authority.check_can_manage(record.id, record.role_set)
        except NotPermittedError as refused:
            reason = str(refused)
    return UserAccess(
        user_id=user.id,
        email=user.email,
        name=user.name,
        roles=list(user.roles),
        active=user.active,
        tokens=len(live),
        could_read=could_act and record is not None,
        could_change=reason is None,
        reason=reason,
        owner=owner_id is not None and owner_id == user.id,
    )


def _owner_of(record: Aggregate | None) -> UUID | None:
    owner = getattr(record, "owner_id", None) or getattr(record, "assignee_id", None)
    return owner if isinstance(owner, UUID) else None


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
