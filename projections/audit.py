"""The audit log: one row per event — who did what to which record, when, through
what, and which fields changed from what to what."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from domain.privacy import PERSONAL
from projections.events import Recorded
from projections.projector import Projector
from projections.scope import Owners, owned_by, owner_values
from projections.tables import Column, Table

#: Events that are bookkeeping of the write side, not actions on CRM records.
INTERNAL = frozenset({"IdempotencyRecord", "Hierarchy", "OwnerRoster", "Team", "UniqueKey"})


#: Never shown, not even as before/after.
REDACTED = frozenset({"token_hash"})

#: Events that add to or remove from a set-valued field: (event field, record field, add?).
SET_CHANGES: dict[str, tuple[str, str, bool]] = {
    "User.RoleGranted": ("role", "roles", True),
    "User.RoleRevoked": ("role", "roles", False),
    "User.TokenIssued": ("token_id", "token_ids", True),
    "User.TokenRevoked": ("token_id", "token_ids", False),
    "User.CustomRoleGranted": ("role_id", "custom_role_ids", True),
    "User.CustomRoleRevoked": ("role_id", "custom_role_ids", False),
    "Contact.Tagged": ("tag", "tags", True),
    "Contact.Untagged": ("tag", "tags", False),
}

#: Fields an event changes without carrying them.
IMPLIED: dict[str, dict[str, Any]] = {
    "Account.Registered": {"archived": False},
    "Account.Archived": {"archived": True},
    "Account.Restored": {"archived": False},
    "Deal.Opened": {"status": "open"},
    "Deal.Won": {"status": "won"},
    "Deal.Lost": {"status": "lost"},
    "Deal.Reopened": {"status": "open"},
    "Task.Created": {"completed": False},
    "Task.Completed": {"completed": True},
    "Task.Reopened": {"completed": False},
    "User.Invited": {"active": True},
    "User.Deactivated": {"active": False},
    "Interaction.Retracted": {"retracted": True},
    "Account.Removed": {"removed": True},
    "Contact.Removed": {"removed": True},
    "Deal.Removed": {"removed": True},
}


def changes(state: dict[str, Any], event: Recorded) -> dict[str, dict[str, Any]]:
    """Field-level before/after. An event's own ``previous…`` fields give the before
    value where it carries one; otherwise the last value recorded for the field."""
    set_change = SET_CHANGES.get(event.name)
    if set_change is not None:
        source, target, add = set_change
        members = list(state.get(target) or [])
        value = event.data[source]
        updated = [*members, value] if add else [v for v in members if v != value]
        return {target: {"before": members, "after": updated}}
    data = {**event.data, **IMPLIED.get(event.name, {})}
    if event.name == "Interaction.Corrected":
        data = dict(event.data["changes"])
        data.update({f"previous_{k}": v for k, v in event.data["previous"].items()})
    diff: dict[str, dict[str, Any]] = {}
    for field, after in data.items():
        if field in REDACTED:
            continue
        if field == "previous" or field.startswith("previous_"):
            continue
        if "previous" in data and len(_changed_fields(event.data)) == 1:
            before = data["previous"]
        elif f"previous_{field}" in data:
            before = data[f"previous_{field}"]
        else:
            before = state.get(field)
        if before != after:
            diff[field] = {"before": before, "after": after}
    return diff


#: A contact's personal fields as they read once it is erased.
ERASED_VALUES: dict[str, Any] = {
    field: value
    for name, fields in PERSONAL.items()
    if name.startswith("Contact.")
    for field, value in fields.items()
    if field != "previous"
}


def erase_changes(diff: dict[str, Any]) -> dict[str, Any]:
    """``diff`` as its event reads once the contact is erased, as a rebuild derives it:
    personal values erased (a None stays None), and no change left where none shows."""
    erased: dict[str, Any] = {}
    for field, change in diff.items():
        if field in ERASED_VALUES:
            value = ERASED_VALUES[field]
            before = None if change["before"] is None else value
            after = None if change["after"] is None else value
            if before != after:
                erased[field] = {"before": before, "after": after}
        else:
            erased[field] = change
    return erased


def _changed_fields(data: dict[str, Any]) -> list[str]:
    return [f for f in data if f != "previous" and not f.startswith("previous_")]


class AuditLog(Projector):
    name = "audit"
    sees_everything = True

    def declare_tables(self) -> list[Table]:
        self.log = Table(
            "audit_log",
            [
                Column("position", "BIGINT", False),
                Column("recorded_at", "TIMESTAMPTZ", False),
                Column("actor", "VARCHAR"),
                Column("action", "VARCHAR", False),
                Column("entity_kind", "VARCHAR", False),
                Column("entity_id", "UUID", False),
                Column("version", "BIGINT", False),
                Column("changes", "JSON"),
                Column("request_id", "VARCHAR"),
                Column("source", "VARCHAR"),
            ],
            key=["position"],
            indexes=["entity_id", "actor"],
        )
        # The last value of every field of every record: the "before" of the next change.
        self.state_table = Table(
            "audit_state",
            [Column("entity_id", "UUID", False), Column("state", "JSON", False)],
            key=["entity_id"],
        )
        return [self.log, self.state_table]

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        #: Contacts erased in the batch being applied, with the erasure's position.
        self.erased: list[tuple[str, int]] = []
        self.state: dict[str, dict[str, Any]] = {
            str(entity_id): orjson.loads(state)
            for entity_id, state in con.execute(
                "SELECT entity_id, state FROM audit_state"
            ).fetchall()
        }

    def on_any(self, event: Recorded) -> None:
        kind = event.name.split(".", 1)[0]
        if kind in INTERNAL:
            return
        state = self.state.setdefault(event.aggregate_id, {})
        if event.name == "Contact.Erased":
            # As a rebuild reads the earlier events: each personal value erased, a None
            # (or a field never set) left as it is; and a field whose every value reads
            # None once erased (the job title) never logged, so not in the state at all.
            for field, value in ERASED_VALUES.items():
                if value is None:
                    state.pop(field, None)
                elif state.get(field) is not None:
                    state[field] = value
            self.erased.append((event.aggregate_id, event.position))
        diff = changes(state, event)
        for field, change in diff.items():
            state[field] = change["after"]
        self.log.append(
            (
                event.position,
                event.recorded_at,
                event.actor,
                event.name,
                kind.lower(),
                event.aggregate_id,
                event.version,
                orjson.dumps(diff).decode(),
                event.request_id,
                event.source,
            )
        )
        self.state_table.upsert(
            event.aggregate_id, (event.aggregate_id, orjson.dumps(state).decode())
        )

    def after_flush(self, con: duckdb.DuckDBPyConnection) -> None:
        """Blank the before/after values of an erased contact's personal fields in the
        rows logged before its erasure (later reads of its events show them erased)."""
        for entity_id, position in self.erased:
            rows = con.execute(
                "SELECT position, changes FROM audit_log "
                "WHERE entity_id = CAST(? AS UUID) AND position < ?",
                [entity_id, position],
            ).fetchall()
            for row_position, changes in rows:
                blanked = erase_changes(orjson.loads(changes) if changes else {})
                con.execute(
                    "UPDATE audit_log SET changes = ? WHERE position = ?",
                    [orjson.dumps(blanked).decode(), row_position],
                )
        self.erased = []

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        # Imported here: bulk_audit reads this module's constants (INTERNAL, IMPLIED…).
        from projections import bulk_audit

        bulk_audit.build(con)
        return True


def query(
    con: duckdb.DuckDBPyConnection,
    *,
    actor: str | None = None,
    actors: Owners = None,
    entity_kind: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows in position order, filtered; ``after`` is the cursor (a position);
    ``actors``: only the rows caused by those users (``None``: by anyone)."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in [
        ("actor = ?", actor),
        (owned_by("actor", cast="VARCHAR"), owner_values(actors)),
        ("entity_kind = ?", entity_kind),
        ("entity_id = CAST(? AS UUID)", entity_id),
        ("action = ?", action),
        ("recorded_at >= CAST(? AS TIMESTAMPTZ)", since),
        ("recorded_at < CAST(? AS TIMESTAMPTZ)", until),
        ("position > ?", after),
    ]:
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        "SELECT position, recorded_at, actor, action, entity_kind, CAST(entity_id AS VARCHAR) "
        "AS entity_id, version, changes, request_id, source FROM audit_log"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY position LIMIT ?"
    )
    cursor = con.execute(sql, [*params, limit])
    names = [d[0] for d in cursor.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["changes"] = orjson.loads(row["changes"]) if row["changes"] else {}
    return rows
