"""Loading helpers shared by the handlers: the target with its expected version,
referenced records that must exist and that the actor may read."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from commands.app import Crm
from commands.context import Context, Payload, authorize
from commands.errors import ConflictError, NotFoundError, UnknownReferenceError
from domain.account import Account
from domain.ownership import check_readable, owner_of
from domain.roles import Authority
from domain.user import User
from domain.values import Removable

A = TypeVar("A", bound=Aggregate)


def load_target(crm: Crm, cls: type[A], record_id: UUID, ctx: Context) -> A:
    """The record a command changes, refused with a conflict if it is not at the
    version the client expected (``If-Match``), or if it was removed."""
    aggregate = crm.load(cls, record_id)
    check_not_removed(aggregate)
    check_expected_version(aggregate, ctx)
    return aggregate


def check_expected_version(aggregate: Aggregate, ctx: Context) -> None:
    """Refuse with a conflict unless the record is at the version the client expected."""
    if ctx.expected_version is not None and aggregate.version != ctx.expected_version:
        raise ConflictError(
            f"expected version {ctx.expected_version}, but the record is at {aggregate.version}"
        )


def load_permitted(crm: Crm, cls: type[A], record_id: UUID, cmd: Payload, ctx: Context) -> A:
    """The record ``cmd`` changes (as :func:`load_target`), refused unless the permission
    table lets the actor do ``cmd``'s action to a record of its owner."""
    aggregate = load_target(crm, cls, record_id, ctx)
    authorize(cmd, ctx, owner_of(aggregate), aggregate.id)
    return aggregate


def load_ref(crm: Crm, cls: type[A], record_id: UUID, reader: Authority) -> A:
    """A record that a command refers to in its body; it must exist, not be removed, and
    be within ``reader``'s read scope (403 otherwise): linking a record one may not read
    would show it, e.g. a contact's name on one's own deal's timeline. Kinds outside the
    permission table (users, custom roles) are only required to exist."""
    aggregate = load_existing(crm, cls, record_id)
    check_readable(reader, aggregate)
    return aggregate


def load_existing(crm: Crm, cls: type[A], record_id: UUID) -> A:
    """A record named in a command's body that must exist and not be removed."""
    try:
        aggregate = crm.load(cls, record_id)
    except NotFoundError as error:
        raise UnknownReferenceError(error.kind, record_id) from None
    check_not_removed(aggregate)
    return aggregate


def check_not_removed(aggregate: Aggregate) -> None:
    """Refuse a removed account, contact or deal (every later command is refused)."""
    if isinstance(aggregate, Removable):
        aggregate.check_not_removed()


def check_user(crm: Crm, user_id: UUID) -> None:
    """An owner or assignee must be an active user."""
    user = load_existing(crm, User, user_id)
    user.check_active()


def check_account(crm: Crm, account_id: UUID | None, reader: Authority) -> None:
    if account_id is not None:
        load_ref(crm, Account, account_id, reader).check_not_archived()


def check_refs(
    crm: Crm, cls: type[Aggregate], ids: list[UUID] | tuple[UUID, ...], reader: Authority
) -> None:
    for record_id in ids:
        load_ref(crm, cls, record_id, reader)
