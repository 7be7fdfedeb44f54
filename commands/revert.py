"""Reverting an import batch by compensating events.

Every event an import writes carries ``_meta.import_batch`` (``Context.import_batch``).
A revert reads the log in pages, finds the records the batch *created* (their first
event is the batch's), and removes them for good, newest first: interactions are
retracted, deals, contacts and accounts removed (a contact's e-mail addresses freed in
the same save). History keeps everything; every current read model loses the batch's
records. Records the batch only *changed* are reported, never touched: what came
before the batch is not the batch's to undo.

The compensating events are saved in chunks, many records per transaction, each tagged
``source="revert"`` with one request id for the whole revert. A record already removed
or retracted is skipped, so reverting twice writes nothing the second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from commands.app import Crm
from commands.contacts import release_emails
from commands.context import Context
from commands.errors import CommandError
from commands.persistence import META_KEY, Meta
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.interaction import Interaction
from domain.ownership import owner_of
from domain.permissions import (
    Action,
    DeniedError,
    Resource,
    Scope,
    check,
    scope_of,
)
from domain.roles import Authority
from domain.values import Removable

#: The records an import creates, in the order a revert removes them (what refers to
#: others first: an interaction names deals and contacts, a deal an account).
REVERTED: tuple[type[Aggregate], ...] = (Interaction, Deal, Contact, Account)
_BY_TOPIC = {get_topic(cls): cls for cls in REVERTED}
#: What taking a record back is, in the permission table: removing it, or for an
#: interaction (which is never removed) retracting it, an edit.
_PERMIT: dict[type[Aggregate], tuple[Resource, Action]] = {
    Interaction: (Resource.INTERACTION, Action.EDIT),
    Deal: (Resource.DEAL, Action.REMOVE),
    Contact: (Resource.CONTACT, Action.REMOVE),
    Account: (Resource.ACCOUNT, Action.REMOVE),
}

#: Events read per page while looking for the batch; records compensated per save.
PAGE = 10_000
CHUNK = 500

#: ``progress(done, total)``: positions scanned, then records compensated.
Progress = Callable[[int, int], None]


class UnknownBatchError(CommandError):
    """Raised when no event of the store belongs to the import batch (404)."""


@dataclass
class RevertReport:
    batch: str
    request_id: str
    #: Records the batch created, per kind ("interaction", "deal", "contact", "account").
    created: dict[str, int] = field(default_factory=dict)
    #: Compensated now (retracted or removed).
    reverted: int = 0
    #: Already removed or retracted (by an earlier revert, or by hand): left as they are.
    already: int = 0
    #: Records the batch changed without creating them: reported, not touched.
    changed_only: list[UUID] = field(default_factory=list)
    #: Position of the last compensating event (0 when nothing was written).
    position: int = 0


def _kind(cls: type[Aggregate]) -> str:
    return cls.__name__.lower()


def _batch_events(
    crm: Crm, batch: str, progress: Progress | None
) -> Iterator[tuple[UUID, int, str]]:
    """(record id, version, aggregate topic) of every event of ``batch``, in log order."""
    needle = orjson.dumps(batch)  # the batch id as it appears in the stored JSON
    head = crm.position()
    start = 0
    while start < head:
        page = crm.recorder.select_notifications(
            start=start, limit=PAGE, stop=head, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            if needle not in notification.state:
                continue  # most events: no need to decode them
            state: dict[str, Any] = orjson.loads(notification.state)
            meta = state.get(META_KEY) or {}
            if meta.get("import_batch") != batch:
                continue
            topic = notification.topic.rpartition(".")[0]  # "domain.deal:Deal.Opened"
            yield UUID(str(notification.originator_id)), notification.originator_version, topic
        start = page[-1].id
        if progress is not None:
            progress(start, head)


def find_batch(
    crm: Crm, batch: str, progress: Progress | None = None
) -> tuple[dict[type[Aggregate], list[UUID]], list[UUID]]:
    """The records ``batch`` created, per class, and those it only changed."""
    created: dict[type[Aggregate], list[UUID]] = {cls: [] for cls in REVERTED}
    seen_created: set[UUID] = set()
    changed: dict[UUID, None] = {}
    found = False
    for record_id, version, topic in _batch_events(crm, batch, progress):
        found = True
        cls = _BY_TOPIC.get(topic)
        if cls is None:
            continue  # bookkeeping (e-mail keys, hierarchy): follows its record
        if version == 1:
            created[cls].append(record_id)
            seen_created.add(record_id)
        elif record_id not in seen_created:
            changed[record_id] = None
    if not found:
        raise UnknownBatchError(f"no event of the store belongs to import batch {batch}")
    return created, list(changed)


def check_may_revert(
    crm: Crm, actor: Authority, created: dict[type[Aggregate], list[UUID]]
) -> None:
    """Refuse the whole revert, before anything is written, unless the table lets
    ``actor`` take back every record the batch created (remove it, or retract it)."""
    for cls, ids in created.items():
        resource, action = _PERMIT[cls]
        scope = scope_of(actor, resource, action)
        if not ids or scope is Scope.ALL:
            continue
        for record_id in ids:
            check(actor, resource, action, owner_of(crm.load(cls, record_id)), record_id)


def _compensate(crm: Crm, cls: type[Aggregate], record_id: UUID, reason: str) -> list[Any]:
    """The aggregates changed to take one record back (empty: already done)."""
    record = crm.load(cls, record_id)
    if isinstance(record, Interaction):
        if record.retracted:
            return []
        record.retract(reason)
        return [record]
    if isinstance(record, Removable) and record.removed:
        return []
    if isinstance(record, Contact):
        emails = record.remove(reason)
        return [record, *release_emails(crm, record.id, emails)]
    assert isinstance(record, Account | Deal)
    record.remove(reason)
    return [record]


def revert_import(
    crm: Crm,
    batch: str,
    ctx: Context,
    progress: Progress | None = None,
    compensating: Progress | None = None,
) -> RevertReport:
    """Take back every record ``batch`` created (see the module); ``progress`` follows
    the scan of the log, ``compensating`` the records taken back."""
    if all(scope_of(ctx.actor, *permit) is Scope.NONE for permit in _PERMIT.values()):
        raise DeniedError(
            "your roles take back no imported record", Resource.ACCOUNT, Action.REMOVE
        )
    created, changed = find_batch(crm, batch, progress)
    check_may_revert(crm, ctx.actor, created)
    request_id = ctx.request_id or uuid.uuid4().hex
    report = RevertReport(
        batch=batch,
        request_id=request_id,
        created={_kind(cls): len(ids) for cls, ids in created.items()},
        changed_only=changed,
    )
    meta = Meta(actor=ctx.meta.actor, request_id=request_id, source="revert")
    reason = f"import {batch} reverted"
    total = sum(len(ids) for ids in created.values())
    done = 0
    pending: list[Any] = []
    for cls in REVERTED:
        for record_id in reversed(created[cls]):  # newest first
            changes = _compensate(crm, cls, record_id, reason)
            if changes:
                report.reverted += 1
                pending.extend(changes)
            else:
                report.already += 1
            done += 1
            if len(pending) >= CHUNK:
                report.position = _save(crm, meta, pending) or report.position
                pending = []
            if compensating is not None and done % 100 == 0:
                compensating(done, total)
        # A chunk holds one kind at a time: the next kind's checks see this one saved.
        if pending:
            report.position = _save(crm, meta, pending) or report.position
            pending = []
    if compensating is not None:
        compensating(total, total)
    return report


def _save(crm: Crm, meta: Meta, aggregates: list[Any]) -> int:
    recordings = crm.save_with(meta, *aggregates)
    return max((r.notification.id for r in recordings), default=0)
