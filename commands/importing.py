"""Bulk import of accounts, contacts, deals and interactions (``crm import``,
``POST /imports``).

Rows come from CSV or JSON Lines (``commands/import_files.py``) or an HTTP body. Each
row has a ``kind`` (or the import has one for every row) and an ``external_id``, its
id in the system it comes from; its record's id is derived from both
(:func:`~commands.import_rows.import_id`), so running the same import again finds its
records already there and writes nothing new. Rows are taken in order, in batches:

1. one query finds which of the batch's records exist already (skipped);
2. one query loads the records the batch refers to that this import does not hold;
3. each row is validated by its command's model and built by the domain's factory
   (``commands/import_rows.py``); a bad row is refused with its line and reason and
   writes nothing, and so is a row that refers to a refused row;
4. every record of the batch's good rows is saved in one transaction through
   :meth:`Crm.save_with` (the hash chain is written with it), tagged
   ``source="import"`` and ``import_batch``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from commands.app import Crm
from commands.context import Context
from commands.errors import ConflictError
from commands.import_rows import (
    BUILDERS,
    KINDS,
    LIST_FIELDS,
    Lookup,
    Row,
    RowRefusedError,
    import_id,
    reason_of,
)
from commands.import_store import existing_ids
from domain.errors import DomainError, InvalidValueError

#: Rows per transaction (a contact row writes its e-mail keys too: more events).
BATCH_ROWS = 5_000
#: The most characters of an external id.
MAX_EXTERNAL_ID = 200


@dataclass(frozen=True)
class SourceRow:
    """A row as read: its line in the file (or index in a request) and its fields."""

    line: int
    fields: Mapping[str, Any]
    #: Why the row could not even be read (not JSON…); it is refused with this.
    error: str | None = None


@dataclass(frozen=True)
class RowError:
    """A refused row: its line and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    batch_id: str
    written: int = 0
    skipped: int = 0
    refused: list[RowError] = field(default_factory=list)
    events: int = 0
    #: The global position of the last event written (0: none), for reads that wait.
    position: int = 0

    @property
    def rows(self) -> int:
        return self.written + self.skipped + len(self.refused)


def batch_id_of(*parts: bytes) -> str:
    """The import batch id of some content: the same content, the same id."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return str(UUID(bytes=digest.digest()[:16], version=5))


def rows_batch_id(rows: list[dict[str, Any]], kind: str | None) -> str:
    """The batch id of rows sent as data (``POST /imports``): from their canonical JSON,
    so the same rows, the same id. The stdlib's encoder: JSON integers of any size
    (orjson refuses those beyond 64 bits)."""
    content = json.dumps(
        {"kind": kind, "rows": rows}, sort_keys=True, default=str, separators=(",", ":")
    )
    return batch_id_of(content.encode())


def prepare_row(source: SourceRow, kind: str | None) -> Row:
    """The fields of a row cleaned up: blanks dropped, lists split; kind and external
    id checked and taken out."""
    fields: dict[str, Any] = {}
    for name, value in source.fields.items():
        if value.__class__ is str:
            if not value or not (value := value.strip()):
                continue
            if name in LIST_FIELDS:
                value = [item.strip() for item in value.split(";") if item.strip()]
        elif value is None:
            continue
        fields[name] = value
    row_kind = fields.pop("kind", None) or kind
    if kind is not None and row_kind != kind:
        raise RowRefusedError(f"kind: this import takes {kind} rows, not {row_kind!r}")
    if row_kind not in KINDS:
        raise RowRefusedError(f"kind: one of {', '.join(KINDS)}, not {row_kind!r}")
    external_id = fields.pop("external_id", None)
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id:
        raise RowRefusedError("external_id: every row has one (its id in the source system)")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise RowRefusedError(f"external_id: at most {MAX_EXTERNAL_ID} characters")
    return Row(source.line, row_kind, external_id, import_id(row_kind, external_id), fields)


class Importer:
    """Imports rows into ``crm`` as ``ctx.actor``, every event tagged with the batch."""

    def __init__(
        self,
        crm: Crm,
        ctx: Context,
        batch_id: str,
        kind: str | None = None,
        default_owner: str | None = None,
        batch_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        ctx.actor.check_can_write()
        if kind is not None and kind not in KINDS:
            raise InvalidValueError(f"kind is one of {', '.join(KINDS)}, not {kind!r}")
        self.crm = crm
        self.ctx = replace(ctx, source="import", import_batch=batch_id, idempotency_key=None)
        self.kind = kind
        self.batch_rows = batch_rows
        self.progress = progress
        self.report = ImportReport(batch_id)
        self.lookup = Lookup(crm, self.ctx, default_owner)
        #: Line of every row of this run, by record id (duplicates are refused).
        self._lines: dict[UUID, int] = {}

    def run(self, rows: Iterable[SourceRow]) -> ImportReport:
        it = iter(rows)
        while batch := list(islice(it, self.batch_rows)):
            self._import_batch(batch)
            if self.progress is not None:
                self.progress(len(batch))
        self.report.refused.sort(key=lambda e: e.line)
        return self.report

    def _refuse(self, line: int, reason: str) -> None:
        self.report.refused.append(RowError(line, reason))

    def _import_batch(self, batch: list[SourceRow]) -> None:
        rows: list[Row] = []
        for source in batch:
            if source.error is not None:
                self._refuse(source.line, source.error)
                continue
            try:
                row = prepare_row(source, self.kind)
            except RowRefusedError as error:
                self._refuse(source.line, str(error))
                continue
            first = self._lines.get(row.id)
            if first is not None:
                self._refuse(row.line, f"external_id {row.external_id!r} again (line {first})")
                continue
            self._lines[row.id] = row.line
            rows.append(row)
        for attempt in range(2):
            try:
                self._save(rows)
                return
            except ConflictError:
                # Another writer took an id or an e-mail first: decide again on what
                # the store holds now (once; then the conflict is reported).
                if attempt:
                    raise

    def _save(self, rows: list[Row]) -> None:
        lookup = self.lookup
        existing = existing_ids(self.crm, [row.id for row in rows])
        todo = [row for row in rows if row.id not in existing]
        lookup.prepare(todo)
        accepted: list[Row] = []
        refused: list[tuple[Row, str]] = []
        records: dict[UUID, Aggregate] = {}
        for row in todo:
            try:
                created = BUILDERS[row.kind](row, lookup)
            except (RowRefusedError, DomainError, ValueError, TypeError) as error:
                refused.append((row, reason_of(error)))
                lookup.refused.setdefault((row.kind, row.external_id), row.line)
                continue
            for record in created:
                records[record.id] = record
                lookup.pending[record.id] = record
            accepted.append(row)
        recordings = self.crm.save_with(self.ctx.meta, *records.values()) if records else []
        # Committed: only now does the import count these rows as in the store. (Rows
        # found there already are not counted: a reference to one reads it, as a record
        # imported earlier may have changed since, been archived.)
        for row in accepted:
            lookup.imported[row.kind].add(row.id)
        self.report.skipped += len(existing)
        self.report.written += len(accepted)
        self.report.events += len(recordings)
        if recordings:
            self.report.position = max(r.notification.id for r in recordings)
        for row, reason in refused:
            self._refuse(row.line, reason)  # already in lookup.refused (above)
