"""A GDPR subject-access export: everything the CRM holds about one contact, as JSON.

The contact as it stands, its whole history (opened: every field before and after),
the interactions logged with it, the tasks linked to it, the deals it is on and its
account (each as it stands), and the audit log's rows about it. Served by
``GET /contacts/{id}/subject-access`` and ``crm subject-access ID``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import duckdb
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from api.schemas import HistoryEntryPublic, public_json
from commands.app import Crm
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.interaction import Interaction
from domain.task import Task
from projections import audit
from replay.records import iter_history

#: Events whose records may refer to a contact, and the kind of each record.
REFERRING: dict[str, type[Aggregate]] = {
    **{
        get_topic(logged): Interaction
        for logged in (
            Interaction.CallLogged,
            Interaction.EmailLogged,
            Interaction.MeetingLogged,
            Interaction.NoteLogged,
            Interaction.SmsLogged,
        )
    },
    "domain.interaction:Interaction.Corrected": Interaction,
    "domain.task:Task.Created": Task,
    "domain.deal:Deal.Opened": Deal,
    "domain.deal:Deal.ContactsChanged": Deal,
}
PAGE = 10_000
AUDIT_ROWS = 100_000


def _referring(crm: Crm, contact_id: UUID) -> dict[type[Aggregate], list[UUID]]:
    """The records whose events name the contact (a scan of their topics: rare)."""
    found: dict[type[Aggregate], list[UUID]] = {cls: [] for cls in REFERRING.values()}
    needle = contact_id.hex.encode()
    start = 1
    topics = sorted(REFERRING)
    while page := crm.recorder.select_notifications(start, PAGE, topics=topics):
        for n in page:
            record_id = UUID(str(n.originator_id))
            ids = found[REFERRING[n.topic]]
            if needle in bytes(n.state) and record_id not in ids:
                ids.append(record_id)
        start = page[-1].id + 1
    return found


def _refers(record: Aggregate, contact_id: UUID) -> bool:
    if isinstance(record, Task):
        return record.linked_id == contact_id
    return contact_id in getattr(record, "contact_ids", [])


def subject_access(
    crm: Crm, contact_id: UUID, audit_log: duckdb.DuckDBPyConnection | None
) -> dict[str, Any]:
    contact = crm.load(Contact, contact_id)
    referring = _referring(crm, contact_id)
    related = {
        cls: [r for r in (crm.load(cls, i) for i in ids) if _refers(r, contact_id)]
        for cls, ids in referring.items()
    }
    account = crm.find(Account, contact.account_id) if contact.account_id else None
    return {
        "contact": public_json(contact),
        "erased": contact.erased,
        "history": [
            HistoryEntryPublic(**vars(entry)).model_dump(mode="json")
            for entry in iter_history(crm, Contact, contact_id, public_json)
        ],
        "interactions": [public_json(r) for r in related[Interaction]],
        "tasks": [public_json(r) for r in related[Task]],
        "deals": [public_json(r) for r in related[Deal]],
        "account": public_json(account) if account is not None else None,
        "audit": None
        if audit_log is None
        else audit.query(audit_log, entity_id=str(contact_id), limit=AUDIT_ROWS),
    }
