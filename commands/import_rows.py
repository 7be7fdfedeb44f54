"""One import row -> the records it creates, through the commands' own models
(``RegisterAccount``, ``CreateContact``, ``OpenDeal``, ``LogCall``…) and the domain's
factories, as the create handlers do; references are resolved from what the import
holds in memory and what :class:`Lookup` loaded in bulk, never one read per row.

A reference names a record by the ``external_id`` it was imported with (this import or
an earlier one) or by its id; owners are users named by e-mail address or id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from commands.accounts import RegisterAccount, new_account, owner_or_actor
from commands.app import Crm
from commands.contacts import CreateContact, claim_email_keys, email_key_ids, new_contact
from commands.context import Context, authorize
from commands.deals import OpenDeal, new_deal
from commands.import_store import ids_with_topics, load_many
from commands.interactions import (
    LogCall,
    LogEmail,
    LogInteraction,
    LogMeeting,
    LogNote,
    LogSms,
    new_interaction,
)
from commands.users import USER_EMAIL_SCOPE
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import DomainError
from domain.index import UniqueKey
from domain.interaction import Interaction
from domain.ownership import check_readable
from domain.pipeline import Pipeline
from domain.user import User
from domain.values import key_id, normalize_email

A = TypeVar("A", bound=Aggregate)

KINDS: dict[str, type[Aggregate]] = {
    "account": Account,
    "contact": Contact,
    "deal": Deal,
    "interaction": Interaction,
}
INTERACTION_TYPES: dict[str, type[LogInteraction]] = {
    "call": LogCall,
    "email": LogEmail,
    "meeting": LogMeeting,
    "note": LogNote,
    "sms": LogSms,
}
#: Columns that hold several values: a JSON list, or a text separated by ";".
LIST_FIELDS = frozenset({"emails", "phones", "tags", "contacts", "attendees"})
#: Reference columns of each kind -> the kind they refer to.
REFERENCES: dict[str, dict[str, str]] = {
    "account": {"parent": "account"},
    "contact": {"account": "account"},
    "deal": {"account": "account", "contacts": "contact"},
    "interaction": {"account": "account", "contacts": "contact", "deal": "deal"},
}


class RowRefusedError(Exception):
    """Raised when an import row cannot be imported; the message says why."""


def text(value: Any, column: str) -> str:
    """A reference or name given as text (a whole number, as JSON may give it, too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RowRefusedError(f"{column}: a reference is text, not {type(value).__name__}")
    return value


def texts(value: Any, column: str) -> list[str]:
    if value is None:
        return []
    return [text(item, column) for item in (value if isinstance(value, list) else [value])]


def import_id(kind: str, external_id: str) -> UUID:
    """The id of the record imported as ``external_id``: the same in every run."""
    return key_id(f"import-{kind}", external_id)


@lru_cache(maxsize=1 << 16)
def candidates(kind: str, value: str) -> tuple[UUID, ...]:
    """The ids a reference may mean: the record imported as ``value``, then the record
    whose id ``value`` is. (Cached: many rows refer to the same few records.)"""
    imported = import_id(kind, value)
    try:
        return imported, UUID(value)
    except ValueError:
        return (imported,)


def reason_of(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for e in error.errors():
            where = ".".join(str(p) for p in e["loc"])
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        return "; ".join(parts)
    return str(error)


@dataclass(frozen=True)
class Row:
    """A row ready to import: its line, kind, external id, derived id and fields."""

    line: int
    kind: str
    external_id: str
    id: UUID
    fields: dict[str, Any]

    def references(self) -> list[tuple[str, str]]:
        """(kind, value) of every record this row refers to."""
        refs = []
        for column, kind in REFERENCES[self.kind].items():
            value = self.fields.get(column)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str | int) and not isinstance(item, bool):
                    refs.append((kind, str(item)))
        return refs


@dataclass
class Lookup:
    """Everything an import resolves references against, per batch of rows."""

    crm: Crm
    ctx: Context
    default_owner: str | None = None
    #: Ids of the records this import has written, per kind.
    imported: dict[str, set[UUID]] = field(default_factory=lambda: {k: set() for k in KINDS})
    #: (kind, external id) of refused rows -> their line.
    refused: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The records created by the rows accepted so far in this batch.
    pending: dict[UUID, Aggregate] = field(default_factory=dict)
    #: Records of the store this batch refers to (loaded in bulk by :meth:`prepare`).
    loaded: dict[UUID, Aggregate] = field(default_factory=dict)
    _owners: dict[str, UUID | str] = field(default_factory=dict)
    _pipelines: dict[str, Pipeline | str] = field(default_factory=dict)
    _pipelines_by_name: dict[str, list[Pipeline]] | None = None

    def prepare(self, rows: list[Row]) -> None:
        """Load in one query the records that ``rows`` refer to and the e-mail keys they
        claim, unless this import holds them already."""
        own = {row.id for row in rows}
        secret = self.crm.index_secret
        wanted: set[UUID] = set()
        for row in rows:
            for kind, value in row.references():
                for candidate in candidates(kind, value):
                    # An account's parent is needed as a record; others only to exist.
                    if candidate not in own and (
                        candidate not in self.imported[kind]
                        or (row.kind == "account" and kind == "account")
                    ):
                        wanted.add(candidate)
            if row.kind == "contact":
                emails = row.fields.get("emails")
                for email in emails if isinstance(emails, list) else ():
                    # A bad address is refused with its reason when the row is built.
                    with contextlib.suppress(DomainError, AttributeError):
                        wanted.update(email_key_ids(secret, normalize_email(email)))
        self.pending = {}
        self.loaded = load_many(self.crm, wanted)

    # References

    def resolve(self, kind: str, value: str) -> UUID:
        """The id of the ``kind`` record named ``value`` (external id first, then id)."""
        cls = KINDS[kind]
        for candidate in candidates(kind, value):
            if candidate in self.imported[kind] or isinstance(self.pending.get(candidate), cls):
                return candidate
            stored = self.loaded.get(candidate)
            if isinstance(stored, cls):
                # A stored record: linked only if the actor may read it (as for POST).
                check_readable(self.ctx.actor, stored)
                return candidate
        line = self.refused.get((kind, value))
        if line is not None:
            raise RowRefusedError(f"{kind} {value!r} was refused (line {line})")
        raise RowRefusedError(f"no {kind} {value!r} (neither imported under that id nor stored)")

    def record(self, cls: type[A], record_id: UUID) -> A | None:
        found = self.pending.get(record_id) or self.loaded.get(record_id)
        return found if isinstance(found, cls) else None

    def account(self, value: Any) -> UUID | None:
        """An account a record is linked to: it must exist and not be archived."""
        if value is None:
            return None
        account_id = self.resolve("account", text(value, "account"))
        account = self.record(Account, account_id)
        if account is not None:
            account.check_not_archived()
        return account_id

    def owner(self, given: Any) -> UUID:
        """An owner: an active user, by e-mail or id; the default owner, or the actor."""
        value = text(given, "owner") if given is not None else self.default_owner
        if value is None:
            if self.ctx.actor.user_id is None:
                raise RowRefusedError("owner: the row names none, and no user is acting")
            return owner_or_actor(None, self.ctx)
        if value not in self._owners:
            self._owners[value] = self._find_owner(value)
        owner = self._owners[value]
        if isinstance(owner, str):
            raise RowRefusedError(owner)
        return owner

    def _find_owner(self, value: str) -> UUID | str:
        try:
            user_id = UUID(value)
        except ValueError:
            try:
                email = normalize_email(value)
            except DomainError as error:
                return f"owner: {error}"
            key = self.crm.find(UniqueKey, key_id(USER_EMAIL_SCOPE, email))
            if key is None or key.holder_id is None:
                return f"owner: no user with e-mail {email}"
            user_id = key.holder_id
        user = self.crm.find(User, user_id)
        if user is None:
            return f"owner: no user {value}"
        try:
            user.check_active()
        except DomainError as error:
            return f"owner: {error}"
        return user.id

    def pipeline(self, given: Any) -> Pipeline:
        """A pipeline by id or by name."""
        if given is None:
            raise RowRefusedError("pipeline: a deal names its pipeline (id or name)")
        value = text(given, "pipeline")
        if value not in self._pipelines:
            self._pipelines[value] = self._find_pipeline(value)
        pipeline = self._pipelines[value]
        if isinstance(pipeline, str):
            raise RowRefusedError(pipeline)
        check_readable(self.ctx.actor, pipeline)  # as POST /deals: a linked record
        return pipeline

    def _find_pipeline(self, value: str) -> Pipeline | str:
        try:
            found = self.crm.find(Pipeline, UUID(value))
            if found is not None:
                return found
        except ValueError:
            pass
        if self._pipelines_by_name is None:
            topics = [get_topic(Pipeline.Created)]
            by_name: dict[str, list[Pipeline]] = {}
            for record in load_many(self.crm, ids_with_topics(self.crm, topics)).values():
                if isinstance(record, Pipeline):
                    by_name.setdefault(record.name.casefold(), []).append(record)
            self._pipelines_by_name = by_name
        matches = self._pipelines_by_name.get(value.strip().casefold(), [])
        if len(matches) > 1:
            return f"pipeline: {len(matches)} pipelines are named {value!r}; give its id"
        return matches[0] if matches else f"pipeline: no pipeline {value!r}"


def build_account(row: Row, find: Lookup) -> list[Aggregate]:
    data = dict(row.fields)
    owner_id = find.owner(data.pop("owner", None))
    parent_ref = data.pop("parent", None)
    parent = None
    if parent_ref is not None:
        parent = find.record(Account, find.resolve("account", text(parent_ref, "parent")))
        if parent is None:  # imported by an earlier batch and not loaded: cannot happen
            raise RowRefusedError(f"account {parent_ref!r} could not be read")
    cmd = RegisterAccount.model_validate(
        {**data, "owner_id": owner_id, "parent_id": parent.id if parent else None}
    )
    authorize(cmd, find.ctx, owner_id, row.id)  # the table, as for POST
    return [new_account(cmd, owner_id, parent, id=row.id)]


def build_contact(row: Row, find: Lookup) -> list[Aggregate]:
    data = dict(row.fields)
    owner_id = find.owner(data.pop("owner", None))
    account_id = find.account(data.pop("account", None))
    cmd = CreateContact.model_validate({**data, "owner_id": owner_id, "account_id": account_id})
    authorize(cmd, find.ctx, owner_id, row.id)  # the table, as for POST
    contact = new_contact(cmd, owner_id, id=row.id)
    keys = claim_email_keys(
        lambda i: find.record(UniqueKey, i), find.crm.index_secret, contact.id, contact.emails
    )
    return [contact, *keys]


def build_deal(row: Row, find: Lookup) -> list[Aggregate]:
    data = dict(row.fields)
    owner_id = find.owner(data.pop("owner", None))
    account_id = find.account(data.pop("account", None))
    contact_ids = [
        find.resolve("contact", c) for c in texts(data.pop("contacts", None), "contacts")
    ]
    pipeline = find.pipeline(data.pop("pipeline", None))
    cmd = OpenDeal.model_validate(
        {
            **data,
            "owner_id": owner_id,
            "account_id": account_id,
            "contact_ids": contact_ids,
            "pipeline_id": pipeline.id,
        }
    )
    authorize(cmd, find.ctx, owner_id, row.id)  # the table, as for POST
    return [new_deal(cmd, owner_id, pipeline, id=row.id)]


def build_interaction(row: Row, find: Lookup) -> list[Aggregate]:
    data = dict(row.fields)
    type_name = str(data.pop("type", "")).strip().lower()  # any value: refused if unknown
    model = INTERACTION_TYPES.get(type_name)
    if model is None:
        types = ", ".join(INTERACTION_TYPES)
        raise RowRefusedError(f"type: an interaction's type is one of {types}")
    contact_ids = [
        find.resolve("contact", c) for c in texts(data.pop("contacts", None), "contacts")
    ]
    account = data.pop("account", None)
    deal = data.pop("deal", None)
    cmd = model.model_validate(
        {
            **data,
            "contact_ids": contact_ids,
            "account_id": find.resolve("account", text(account, "account")) if account else None,
            "deal_id": find.resolve("deal", text(deal, "deal")) if deal else None,
        }
    )
    authorize(cmd, find.ctx, find.ctx.actor.user_id, row.id)
    return [new_interaction(cmd, find.ctx, id=row.id)]


BUILDERS: dict[str, Callable[[Row, Lookup], list[Aggregate]]] = {
    "account": build_account,
    "contact": build_contact,
    "deal": build_deal,
    "interaction": build_interaction,
}
