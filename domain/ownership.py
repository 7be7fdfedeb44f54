"""Whose a record is, for the permission table: an account's, contact's or deal's owner,
a task's assignee, whoever logged an interaction; a pipeline has no owner (only an
``all`` scope reaches it). Records of other kinds (users) are not in the table."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.interaction import Interaction
from domain.permissions import Action, Resource, check
from domain.pipeline import Pipeline
from domain.roles import Authority
from domain.task import Task

#: Per kind of record: its resource in the table and the attribute naming its owner.
OWNERSHIP: dict[type[Aggregate], tuple[Resource, str | None]] = {
    Account: (Resource.ACCOUNT, "owner_id"),
    Contact: (Resource.CONTACT, "owner_id"),
    Deal: (Resource.DEAL, "owner_id"),
    Task: (Resource.TASK, "assignee_id"),
    Interaction: (Resource.INTERACTION, "logged_by"),
    Pipeline: (Resource.PIPELINE, None),
}


def ownership_of(record: Aggregate) -> tuple[Resource, UUID | None] | None:
    """The record's resource and owner; ``None`` for a kind the table does not cover."""
    for cls, (resource, attribute) in OWNERSHIP.items():
        if isinstance(record, cls):
            owner = getattr(record, attribute) if attribute else None
            return resource, owner
    return None


def owner_of(record: Aggregate) -> UUID | None:
    """Whose the record is; None for one nobody owns (a pipeline, which only an ``all``
    scope reaches) or of a kind the table does not cover."""
    owned = ownership_of(record)
    return owned[1] if owned else None


def check_readable(actor: Authority, record: Aggregate) -> None:
    """Refuse (403) a record outside the caller's read scope. Its past follows the record
    as it is now: whoever may read it now reads its versions and history, and nobody
    else (whoever owned it then)."""
    owned = ownership_of(record)
    if owned is not None:
        resource, owner = owned
        check(actor, resource, Action.READ, owner, target=record.id)
