"""Timelines: for each contact, account and deal, every interaction and every change,
in time order, keeping both when it happened and when it was logged.

One row per (record, entry) in ``timeline``:

- an interaction (call, e-mail, meeting, note, SMS) on every record it is linked to —
  each of its contacts, its account, its deal. ``position``/``recorded_at`` are those
  of the event that logged it; ``occurred_at`` is when it happened, as last corrected.
  A correction rewrites its rows (moving it between timelines when its links change)
  and is itself a change on every record linked before or after it. A retraction
  flags every row of the interaction ``retracted``; nothing is deleted.
- a change of the record itself (registered, renamed, moved stage, won, tagged, …)
  or of a task linked to it (created, completed, reopened); its ``occurred_at`` is
  the time it was recorded.

Every row of an interaction is a function of its state (kept as JSON in
``timeline_sources``), so a correction or retraction rewrites them whole, the same
whichever batch the earlier events came in. Interactions are most of a CRM's events,
so their states are not all held in memory: a batch reads the few it corrects or
retracts from ``timeline_sources`` (committed by earlier batches, visible in the same
transaction) and forgets them when it is written. Contacts, accounts, deals, linked
tasks and stage names — what summaries need on many events — stay in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import duckdb
import orjson

from domain.errors import InvalidValueError
from domain.interaction import COMMON_FIELDS, DETAIL_FIELDS, InteractionKind
from domain.privacy import PERSONAL
from projections import bulk_timeline
from projections import timeline_text as text
from projections.events import REMOVED, Recorded
from projections.projector import Projector, on
from projections.scope import Owners, owned_by, owner_values
from projections.tables import Column, Table

RECORD_KINDS = ("contact", "account", "deal")
CATEGORIES = frozenset({"interaction", "change"})
LOGGED: dict[str, InteractionKind] = {
    "Interaction.CallLogged": InteractionKind.CALL,
    "Interaction.EmailLogged": InteractionKind.EMAIL,
    "Interaction.MeetingLogged": InteractionKind.MEETING,
    "Interaction.NoteLogged": InteractionKind.NOTE,
    "Interaction.SmsLogged": InteractionKind.SMS,
}
INTERACTION_KINDS = frozenset(kind.value for kind in InteractionKind)
CHANGE_KINDS = frozenset(
    {
        *(f"Account.{a}" for a in ("Registered", "DetailsChanged", "OwnerChanged")),
        *(f"Account.{a}" for a in ("ParentChanged", "Archived", "Restored")),
        *(f"Contact.{a}" for a in ("Created", "DetailsChanged", "EmailsChanged")),
        *(f"Contact.{a}" for a in ("AccountChanged", "OwnerChanged", "Tagged", "Untagged")),
        "Contact.LifecycleStageChanged",
        *(f"Deal.{a}" for a in ("Opened", "StageChanged", "Retitled", "AmountChanged")),
        *(f"Deal.{a}" for a in ("OwnerChanged", "CloseDateChanged", "ContactsChanged")),
        *(f"Deal.{a}" for a in ("Won", "Lost", "Reopened")),
        *(f"Task.{a}" for a in ("Created", "Completed", "Reopened")),
        "Interaction.Corrected",
        "Interaction.Retracted",
    }
)
#: What ``kinds=`` accepts: an interaction kind, a change's event name, or a category.
KINDS = INTERACTION_KINDS | CHANGE_KINDS | CATEGORIES

#: The fields a record's ``DetailsChanged`` carries, compared with the last ones seen.
DETAILS: dict[str, tuple[str, ...]] = {
    "account": ("name", "website", "industry", "country", "address"),
    "contact": ("first_name", "last_name", "phones", "job_title"),
}

#: Events that rewrite an interaction logged earlier.
REVISIONS = frozenset({"Interaction.Corrected", "Interaction.Retracted"})

RecordRef = tuple[str, str]
EntryKey = tuple[str, str, int]


def record_name(kind: str, fields: dict[str, Any]) -> str:
    if kind == "contact":
        return f"{fields['first_name']} {fields['last_name']}".strip()
    return str(fields["title" if kind == "deal" else "name"])


def links(state: dict[str, Any]) -> list[RecordRef]:
    """The records an interaction is linked to: its contacts, its account, its deal."""
    refs = [("contact", contact_id) for contact_id in state["contact_ids"]]
    if state["account_id"] is not None:
        refs.append(("account", state["account_id"]))
    if state["deal_id"] is not None:
        refs.append(("deal", state["deal_id"]))
    return refs


class Timeline(Projector):
    name = "timeline"

    def declare_tables(self) -> list[Table]:
        self.entries = Table(
            "timeline",
            [
                Column("record_kind", "VARCHAR", False),
                Column("record_id", "UUID", False),
                Column("position", "BIGINT", False),
                Column("category", "VARCHAR", False),
                Column("kind", "VARCHAR", False),
                Column("entity_kind", "VARCHAR", False),
                Column("entity_id", "UUID", False),
                Column("occurred_at", "TIMESTAMPTZ", False),
                Column("recorded_at", "TIMESTAMPTZ", False),
                Column("actor", "VARCHAR"),
                Column("summary", "VARCHAR", False),
                Column("payload", "JSON", False),
                Column("retracted", "BOOLEAN", False),
            ],
            key=["record_kind", "record_id", "position"],
        )
        # Every contact, account and deal seen, with the fields later summaries compare.
        self.record_table = Table(
            "timeline_records",
            [
                Column("record_id", "UUID", False),
                Column("record_kind", "VARCHAR", False),
                Column("name", "VARCHAR", False),
                Column("fields", "JSON", False),
            ],
            key=["record_id"],
        )
        # What later events need: interactions (whole), linked tasks, pipeline stage names.
        self.source_table = Table(
            "timeline_sources",
            [
                Column("source_id", "UUID", False),
                Column("source_kind", "VARCHAR", False),
                Column("state", "JSON", False),
            ],
            key=["source_id"],
        )
        self.removed_table = Table(
            "timeline_removed",
            [Column("record_id", "UUID", False), Column("position", "BIGINT", False)],
            key=["record_id"],
        )
        return [self.entries, self.record_table, self.source_table, self.removed_table]

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        for record_id, kind, fields in con.execute(
            "SELECT CAST(record_id AS VARCHAR), record_kind, fields FROM timeline_records"
        ).fetchall():
            self.records[record_id] = {"kind": kind, "fields": orjson.loads(fields)}
        #: The interactions of the batch being applied (see ``apply``).
        self.interactions: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.stages: dict[str, dict[str, Any]] = {}
        memory = {"task": self.tasks, "stage": self.stages}
        for source_id, kind, state in con.execute(
            "SELECT CAST(source_id AS VARCHAR), source_kind, state FROM timeline_sources "
            "WHERE source_kind <> 'interaction'"
        ).fetchall():
            memory[kind][source_id] = orjson.loads(state)
        self.removed: set[str] = {
            record_id
            for (record_id,) in con.execute(
                "SELECT CAST(record_id AS VARCHAR) FROM timeline_removed"
            ).fetchall()
        }
        #: Removed in the batch being applied: their rows written earlier go after it.
        self.purged: list[str] = []
        #: Contacts erased in the batch, whose names others' entries still show.
        self.erased: list[str] = []

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        bulk_timeline.build(con)
        return True

    def apply(self, con: duckdb.DuckDBPyConnection, events: Sequence[Recorded]) -> None:
        wanted = {e.aggregate_id for e in events if e.name in REVISIONS} - set(self.interactions)
        if wanted:
            for interaction_id, state in con.execute(
                "SELECT CAST(source_id AS VARCHAR), state FROM timeline_sources "
                "WHERE source_id IN (SELECT unnest(CAST(? AS UUID[])))",
                [sorted(wanted)],
            ).fetchall():
                self.interactions[interaction_id] = orjson.loads(state)
        try:
            super().apply(con, events)
        finally:
            self.interactions.clear()

    # Writing

    def _change(
        self,
        record: RecordRef,
        event: Recorded,
        summary: str,
        payload: dict[str, Any],
        entity: RecordRef | None = None,
    ) -> None:
        entity_kind, entity_id = entity or record
        if record[1] in self.removed or entity_id in self.removed:
            return
        self.entries.append(
            (
                *record,
                event.position,
                "change",
                event.name,
                entity_kind,
                entity_id,
                event.recorded_at,
                event.recorded_at,
                event.actor,
                summary,
                orjson.dumps(payload).decode(),
                False,
            )
        )

    def _own(self, event: Recorded, summary: str, **extra: Any) -> None:
        """A change of the record the event belongs to; its payload is the event's data."""
        self._change((event.kind, event.aggregate_id), event, summary, {**event.data, **extra})

    def _remember_record(self, kind: str, record_id: str, fields: dict[str, Any]) -> None:
        self.records[record_id] = {"kind": kind, "fields": fields}
        self.record_table.upsert(
            record_id,
            (record_id, kind, record_name(kind, fields), orjson.dumps(fields).decode()),
        )

    def _remember_source(self, kind: str, source_id: str, state: dict[str, Any]) -> None:
        self.source_table.upsert(source_id, (source_id, kind, orjson.dumps(state).decode()))

    def _fields(self, record_id: str) -> dict[str, Any] | None:
        record = self.records.get(record_id)
        return None if record is None else dict(record["fields"])

    def _name(self, record_id: str | None, kind: str) -> str | None:
        if record_id is None:
            return None
        record = self.records.get(record_id)
        return record_name(kind, record["fields"]) if record else f"unknown {kind}"

    def _stage_name(self, stage_id: str) -> str:
        stage = self.stages.get(stage_id)
        return str(stage["name"]) if stage else "unknown stage"

    def _details_changed(self, event: Recorded) -> None:
        kind = event.kind
        before = self._fields(event.aggregate_id)
        after = dict(before or {})
        diff: dict[str, dict[str, Any]] = {}
        for field in DETAILS[kind]:
            old, new = (before or {}).get(field), event.data[field]
            after[field] = new
            if old != new:
                diff[field] = {"before": old, "after": new}
        self._remember_record(kind, event.aggregate_id, after)
        name_fields = {"name", "first_name", "last_name"}
        summary = text.details_changed(
            record_name(kind, before) if before else None,
            record_name(kind, after),
            [f for f in diff if f not in name_fields],
        )
        self._change((kind, event.aggregate_id), event, summary, {"changes": diff})

    # Removal

    @on(*REMOVED)
    def _record_removed(self, event: Recorded) -> None:
        if event.name == "Contact.Erased":  # its name may still be shown by others' entries
            erased = PERSONAL["Contact.DetailsChanged"]
            self._remember_record(
                "contact", event.aggregate_id, {f: erased[f] for f in DETAILS["contact"]}
            )
            self.erased.append(event.aggregate_id)
        self.removed.add(event.aggregate_id)
        self.removed_table.upsert(event.aggregate_id, (event.aggregate_id, event.position))
        self.purged.append(event.aggregate_id)

    def after_flush(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.purged:
            ids = "SELECT unnest(CAST(? AS UUID[]))"
            con.execute(bulk_timeline.PURGE_SQL.format(removed=ids), [self.purged] * 2)
            self.purged = []
        if self.erased:
            self._rename_erased_contacts(con, set(self.erased))
            self.erased = []

    def _rename_erased_contacts(self, con: duckdb.DuckDBPyConnection, erased: set[str]) -> None:
        """Deals' entries written while an erased contact was readable name it: they are
        written again as a rebuild writes them, with the name the erasure left."""
        rows = con.execute(
            "SELECT record_kind, record_id, position, payload FROM timeline "
            "WHERE kind = 'Deal.ContactsChanged'"
        ).fetchall()
        for record_kind, record_id, position, payload in rows:
            data = orjson.loads(payload)
            if erased.isdisjoint(data["contact_ids"]):
                continue
            names = [
                self._name(contact, "contact") or "" if contact in erased else name
                for contact, name in zip(data["contact_ids"], data["contact_names"], strict=True)
            ]
            data["contact_names"] = names
            con.execute(
                "UPDATE timeline SET summary = ?, payload = ? "
                "WHERE record_kind = ? AND record_id = ? AND position = ?",
                [
                    f"Contacts set to {text.listing(names)}",
                    orjson.dumps(data).decode(),
                    record_kind,
                    record_id,
                    position,
                ],
            )

    # Accounts

    @on("Account.Registered")
    def _account_registered(self, event: Recorded) -> None:
        fields = {f: event.data[f] for f in DETAILS["account"]}
        self._remember_record("account", event.aggregate_id, fields)
        self._own(
            event,
            f"Account registered: {fields['name']}",
            parent_name=self._name(event.data["parent_id"], "account"),
        )

    @on("Account.DetailsChanged", "Contact.DetailsChanged")
    def _record_details_changed(self, event: Recorded) -> None:
        self._details_changed(event)

    @on("Account.OwnerChanged", "Contact.OwnerChanged", "Deal.OwnerChanged")
    def _owner_changed(self, event: Recorded) -> None:
        self._own(event, "Owner changed")

    @on("Account.ParentChanged")
    def _parent_changed(self, event: Recorded) -> None:
        parent = self._name(event.data["parent_id"], "account")
        previous = self._name(event.data["previous"], "account")
        summary = f"Moved under {parent}" if parent else f"No longer under {previous}"
        self._own(event, summary, parent_name=parent, previous_name=previous)

    @on("Account.Archived", "Account.Restored")
    def _archived_or_restored(self, event: Recorded) -> None:
        self._own(event, f"Account {event.action.lower()}")

    # Contacts

    @on("Contact.Created")
    def _contact_created(self, event: Recorded) -> None:
        fields = {f: event.data[f] for f in DETAILS["contact"]}
        self._remember_record("contact", event.aggregate_id, fields)
        self._own(
            event,
            f"Contact created: {record_name('contact', fields)}",
            account_name=self._name(event.data["account_id"], "account"),
        )

    @on("Contact.EmailsChanged")
    def _emails_changed(self, event: Recorded) -> None:
        self._own(event, f"E-mail addresses set to {text.listing(event.data['emails'])}")

    @on("Contact.AccountChanged")
    def _contact_account_changed(self, event: Recorded) -> None:
        account = self._name(event.data["account_id"], "account")
        previous = self._name(event.data["previous"], "account")
        summary = f"Linked to account {account}" if account else f"Unlinked from {previous}"
        self._own(event, summary, account_name=account, previous_name=previous)

    @on("Contact.Tagged", "Contact.Untagged")
    def _tag_changed(self, event: Recorded) -> None:
        self._own(event, f"{event.action} {event.data['tag']}")

    @on("Contact.LifecycleStageChanged")
    def _lifecycle_changed(self, event: Recorded) -> None:
        data = event.data
        self._own(event, text.from_to("Lifecycle stage", data["previous"], data["stage"]))

    # Pipelines (for stage names only) and deals

    @on("Pipeline.Created")
    def _pipeline_created(self, event: Recorded) -> None:
        for stage in event.data["stages"]:
            self._set_stage_name(stage["id"], stage["name"])

    @on("Pipeline.StageAdded")
    def _stage_added(self, event: Recorded) -> None:
        stage = event.data["stage"]
        self._set_stage_name(stage["id"], stage["name"])

    @on("Pipeline.StageRenamed")
    def _stage_renamed(self, event: Recorded) -> None:
        self._set_stage_name(event.data["stage_id"], event.data["name"])

    def _set_stage_name(self, stage_id: str, name: str) -> None:
        self.stages[stage_id] = {"name": name}
        self._remember_source("stage", stage_id, self.stages[stage_id])

    @on("Deal.Opened")
    def _deal_opened(self, event: Recorded) -> None:
        data = event.data
        self._remember_record("deal", event.aggregate_id, {"title": data["title"]})
        stage = self._stage_name(data["stage_id"])
        self._own(
            event,
            f"Deal opened: {data['title']}, {data['amount']} {data['currency']} in {stage}",
            stage_name=stage,
            account_name=self._name(data["account_id"], "account"),
        )

    @on("Deal.StageChanged")
    def _deal_stage_changed(self, event: Recorded) -> None:
        stage = self._stage_name(event.data["stage_id"])
        previous = self._stage_name(event.data["previous"])
        self._own(
            event, f"Moved from {previous} to {stage}", stage_name=stage, previous_name=previous
        )

    @on("Deal.Retitled")
    def _deal_retitled(self, event: Recorded) -> None:
        self._remember_record("deal", event.aggregate_id, {"title": event.data["title"]})
        self._own(event, f"Renamed from {event.data['previous']} to {event.data['title']}")

    @on("Deal.AmountChanged")
    def _deal_amount_changed(self, event: Recorded) -> None:
        data = event.data
        self._own(
            event,
            text.from_to(
                "Amount",
                f"{data['previous_amount']} {data['previous_currency']}",
                f"{data['amount']} {data['currency']}",
            ),
        )

    @on("Deal.CloseDateChanged")
    def _deal_close_date_changed(self, event: Recorded) -> None:
        data = event.data
        self._own(
            event,
            text.from_to("Expected close date", data["previous"], data["expected_close_date"]),
        )

    @on("Deal.ContactsChanged")
    def _deal_contacts_changed(self, event: Recorded) -> None:
        names = [self._name(c, "contact") or "" for c in event.data["contact_ids"]]
        self._own(event, f"Contacts set to {text.listing(names)}", contact_names=names)

    @on("Deal.Won", "Deal.Lost")
    def _deal_closed(self, event: Recorded) -> None:
        reason = text.excerpt(event.data["reason"])
        self._own(event, f"Deal {event.action.lower()}" + (f": {reason}" if reason else ""))

    @on("Deal.Reopened")
    def _deal_reopened(self, event: Recorded) -> None:
        stage = self._stage_name(event.data["stage_id"])
        self._own(event, f"Deal reopened in {stage}", stage_name=stage)

    # Tasks linked to a record

    @on("Task.Created")
    def _task_created(self, event: Recorded) -> None:
        data = event.data
        if data["linked_kind"] is None:
            return
        task = {"record_kind": data["linked_kind"], "record_id": data["linked_id"]}
        self.tasks[event.aggregate_id] = {**task, "title": data["title"]}
        self._remember_source("task", event.aggregate_id, self.tasks[event.aggregate_id])
        self._task_change(event, "Task created")

    @on("Task.Retitled")
    def _task_retitled(self, event: Recorded) -> None:
        task = self.tasks.get(event.aggregate_id)
        if task is not None:
            task["title"] = event.data["title"]
            self._remember_source("task", event.aggregate_id, task)

    @on("Task.Completed", "Task.Reopened")
    def _task_done_or_reopened(self, event: Recorded) -> None:
        if event.aggregate_id in self.tasks:
            self._task_change(event, f"Task {event.action.lower()}")

    def _task_change(self, event: Recorded, what: str) -> None:
        task = self.tasks[event.aggregate_id]
        self._change(
            (task["record_kind"], task["record_id"]),
            event,
            f"{what}: {task['title']}",
            {"task_id": event.aggregate_id, "title": task["title"], **event.data},
            entity=("task", event.aggregate_id),
        )

    # Interactions

    @on(*LOGGED)
    def _interaction_logged(self, event: Recorded) -> None:
        kind = LOGGED[event.name]
        data = event.data
        state: dict[str, Any] = {
            "kind": kind.value,
            "position": event.position,
            "recorded_at": event.recorded_at,
            "actor": event.actor,
            "occurred_at": data["occurred_at"],
            "contact_ids": data["contact_ids"],
            "account_id": data["account_id"],
            "deal_id": data["deal_id"],
            "logged_by": data["logged_by"],
            "details": {f: data[f] for f in sorted(DETAIL_FIELDS[kind])},
            "corrections": [],
            "retraction": None,
        }
        self._rewrite_interaction(event.aggregate_id, None, state)

    @on("Interaction.Corrected")
    def _interaction_corrected(self, event: Recorded) -> None:
        before = self.interactions.get(event.aggregate_id)
        if before is None:
            return
        changes, previous = event.data["changes"], event.data["previous"]
        state = {**before, "details": dict(before["details"])}
        for field, value in changes.items():
            if field in COMMON_FIELDS:
                state[field] = value
            else:
                state["details"][field] = value
        correction = {
            "position": event.position,
            "recorded_at": event.recorded_at,
            "actor": event.actor,
            "changes": {f: {"before": previous[f], "after": v} for f, v in changes.items()},
            "records": list(dict.fromkeys([*links(before), *links(state)])),
        }
        state["corrections"] = [*before["corrections"], correction]
        self._rewrite_interaction(event.aggregate_id, before, state)

    @on("Interaction.Retracted")
    def _interaction_retracted(self, event: Recorded) -> None:
        before = self.interactions.get(event.aggregate_id)
        if before is None:
            return
        retraction = {
            "position": event.position,
            "recorded_at": event.recorded_at,
            "actor": event.actor,
            "reason": event.data["reason"],
            "records": links(before),
        }
        self._rewrite_interaction(event.aggregate_id, before, {**before, "retraction": retraction})

    def _rewrite_interaction(
        self, interaction_id: str, before: dict[str, Any] | None, state: dict[str, Any]
    ) -> None:
        rows = {
            key: row
            for key, row in interaction_rows(interaction_id, state).items()
            if key[1] not in self.removed
        }
        if before is not None:
            for key in interaction_rows(interaction_id, before).keys() - rows.keys():
                self.entries.delete(key)
        for key, row in rows.items():
            self.entries.upsert(key, row)
        self.interactions[interaction_id] = state
        self._remember_source("interaction", interaction_id, state)


def interaction_rows(interaction_id: str, state: dict[str, Any]) -> dict[EntryKey, tuple[Any, ...]]:
    """Every timeline row of one interaction: the interaction on each record it is
    linked to, and its corrections and retraction as changes."""
    kind: str = state["kind"]
    retraction = state["retraction"]
    retracted = retraction is not None
    rows: dict[EntryKey, tuple[Any, ...]] = {}

    def add(
        records: Iterable[Sequence[str]],
        position: int,
        category: str,
        entry_kind: str,
        occurred_at: str,
        recorded_at: str,
        actor: str | None,
        summary: str,
        payload: dict[str, Any],
    ) -> None:
        encoded = orjson.dumps(payload).decode()
        for record_kind, record_id in records:
            rows[(record_kind, record_id, position)] = (
                record_kind,
                record_id,
                position,
                category,
                entry_kind,
                "interaction",
                interaction_id,
                occurred_at,
                recorded_at,
                actor,
                summary,
                encoded,
                retracted,
            )

    corrections = state["corrections"]
    add(
        links(state),
        state["position"],
        "interaction",
        kind,
        state["occurred_at"],
        state["recorded_at"],
        state["actor"],
        text.interaction(kind, state["details"]),
        {
            "interaction_id": interaction_id,
            "contact_ids": state["contact_ids"],
            "account_id": state["account_id"],
            "deal_id": state["deal_id"],
            "logged_by": state["logged_by"],
            **state["details"],
            "corrected_at": corrections[-1]["recorded_at"] if corrections else None,
            "retraction_reason": retraction["reason"] if retracted else None,
        },
    )
    about = {"interaction_id": interaction_id, "interaction_kind": kind}
    for change in corrections:
        add(
            change["records"],
            change["position"],
            "change",
            "Interaction.Corrected",
            change["recorded_at"],
            change["recorded_at"],
            change["actor"],
            text.correction(kind, list(change["changes"])),
            {**about, "changes": change["changes"]},
        )
    if retracted:
        add(
            retraction["records"],
            retraction["position"],
            "change",
            "Interaction.Retracted",
            retraction["recorded_at"],
            retraction["recorded_at"],
            retraction["actor"],
            text.retraction(kind, retraction["reason"]),
            {**about, "reason": retraction["reason"]},
        )
    return rows


# Queries

Order = Literal["occurred", "logged"]
ORDER_COLUMNS: dict[str, str] = {"occurred": "occurred_at", "logged": "recorded_at"}


def check_kinds(kinds: Iterable[str]) -> list[str]:
    """The ``kinds`` filter, refused with the accepted values if one is unknown."""
    values = list(dict.fromkeys(kinds))
    unknown = [k for k in values if k not in KINDS]
    if unknown:
        raise InvalidValueError(
            f"kinds: unknown {', '.join(map(repr, unknown))}; use a category "
            f"({', '.join(sorted(CATEGORIES))}), an interaction kind "
            f"({', '.join(sorted(INTERACTION_KINDS))}) or a change such as Deal.Won"
        )
    return values


def timeline(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    record_id: str,
    *,
    order: Order = "occurred",
    oldest_first: bool = False,
    kinds: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    include_retracted: bool = False,
    interactions_by: Owners = None,
    others_hidden: Sequence[str] = (),
    after: tuple[str, int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The entries of one record's timeline, newest first (or ``oldest_first``), by
    when they happened (``order="occurred"``) or were logged (``"logged"``); ties
    broken by position. ``since``/``until`` bound that same time (``until`` exclusive);
    ``after`` is the (time, position) of the last entry of the previous page.
    ``interactions_by``: only the interactions (and their corrections and retractions)
    logged by those users (``None``: by anyone). ``others_hidden``: kinds of record (e.g.
    ``task``) whose entries come only from the record itself, not from other records
    of that kind linked to it (whose owners this read model does not know)."""
    if kind not in RECORD_KINDS:
        raise InvalidValueError(f"a timeline belongs to a {', '.join(RECORD_KINDS)}, not {kind}")
    column = ORDER_COLUMNS[order]
    where = ["record_kind = ?", "record_id = CAST(? AS UUID)"]
    params: list[Any] = [kind, record_id]
    if not include_retracted:
        where.append("NOT retracted")
    if (loggers := owner_values(interactions_by)) is not None:
        logged_by = owned_by("CAST(state->>'logged_by' AS UUID)")
        where.append(
            "(entity_kind <> 'interaction' OR entity_id IN (SELECT source_id FROM "
            f"timeline_sources WHERE source_kind = 'interaction' AND {logged_by}))"
        )
        params.append(loggers)
    if others_hidden:
        marks = ", ".join("?" for _ in others_hidden)
        where.append(f"(entity_kind NOT IN ({marks}) OR entity_id = record_id)")
        params += list(others_hidden)
    if kinds is not None:
        values = check_kinds(kinds)
        marks = ", ".join("?" for _ in values)
        where.append(f"(kind IN ({marks}) OR category IN ({marks}))")
        params += [*values, *values]
    if since is not None:
        where.append(f"{column} >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    if until is not None:
        where.append(f"{column} < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    if after is not None:
        beyond = ">" if oldest_first else "<"
        where.append(
            f"({column} {beyond} CAST(? AS TIMESTAMPTZ) OR "
            f"({column} = CAST(? AS TIMESTAMPTZ) AND position {beyond} ?))"
        )
        params += [after[0], after[0], after[1]]
    direction = "ASC" if oldest_first else "DESC"
    cursor = con.execute(
        "SELECT position, record_kind, CAST(record_id AS VARCHAR) AS record_id, category, "
        "kind, entity_kind, CAST(entity_id AS VARCHAR) AS entity_id, occurred_at, "
        "recorded_at, actor, summary, payload, retracted FROM timeline "
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY {column} {direction}, position {direction} LIMIT ?",
        [*params, limit],
    )
    names = [d[0] for d in cursor.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["payload"] = orjson.loads(row["payload"])
    return rows


def record_removed(con: duckdb.DuckDBPyConnection, record_id: str) -> bool:
    """Whether the record was removed (its timeline is gone)."""
    found = con.execute(
        "SELECT EXISTS (SELECT 1 FROM timeline_removed WHERE record_id = CAST(? AS UUID))",
        [record_id],
    ).fetchone()
    return bool(found and found[0])


def record_known(con: duckdb.DuckDBPyConnection, kind: str, record_id: str) -> bool:
    """Whether the read model has seen this record (as this kind) or any entry for it."""
    found = con.execute(
        "SELECT EXISTS (SELECT 1 FROM timeline_records WHERE record_id = CAST(? AS UUID) "
        "AND record_kind = ?) OR EXISTS (SELECT 1 FROM timeline WHERE record_kind = ? "
        "AND record_id = CAST(? AS UUID))",
        [record_id, kind, kind, record_id],
    ).fetchone()
    return bool(found and found[0])
