"""Reverting an import batch (``commands/revert.py``, ``crm revert-import``,
``POST /imports/{batch}/revert``), on SQLite and PostgreSQL.

A batch is written as ``crm import`` writes it: through the commands, every event
tagged ``import_batch``. After the revert no current read model holds any record the
batch created (every table but the audit log, which keeps everything), the records
from before the batch are as they were, a second revert writes nothing, and an
unknown batch is an error.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import main  # noqa: F401  (registers every command)
from api.cli_common import app as cli
from commands.accounts import RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.contacts import CreateContact
from commands.context import Context
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.interactions import LogCall
from commands.pipelines import CreatePipeline
from commands.revert import UnknownBatchError, revert_import
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import NotPermittedError
from domain.interaction import Interaction
from domain.roles import Role
from projections.host import ReadModels
from tests.commands.test_metadata import cli_environment
from tests.conftest import Person, Store, invite
from tests.projections.compare import content

AUDIT_TABLES = ("audit_log", "audit_state")
REVERTED_KINDS = ("Account", "Contact", "Deal", "Interaction")
#: The timeline's own bookkeeping, never shown: the records and interactions it has seen,
#: and which were removed (so that later events about them write nothing).
INTERNAL_TABLES = ("timeline_records", "timeline_removed", "timeline_sources")


def write_batch(crm: Crm, ctx: Context, pipeline: UUID, n: int) -> dict[str, UUID]:
    """One account with a contact, a deal and a call: what an import row set makes."""
    account = execute(crm, RegisterAccount(name=f"Imported {n}", country="DE"), ctx).id
    contact = execute(
        crm,
        CreateContact.model_validate(
            {"first_name": f"I{n}", "emails": [f"i{n}@example.com"], "account_id": account}
        ),
        ctx,
    ).id
    deal = execute(
        crm,
        OpenDeal.model_validate(
            {
                "title": f"Imported deal {n}",
                "account_id": account,
                "pipeline_id": pipeline,
                "amount": Decimal(500 + n),
                "currency": "EUR",
            }
        ),
        ctx,
    ).id
    call = {
        "occurred_at": "2026-10-01T09:00:00Z",
        "contact_ids": [contact],
        "deal_id": deal,
        "direction": "outbound",
        "duration_seconds": 60,
        "outcome": "connected",
    }
    interaction = execute(crm, LogCall.model_validate(call), ctx).id
    return {"account": account, "contact": contact, "deal": deal, "interaction": interaction}


@pytest.fixture
def story(crm: Crm, owner: Person) -> dict[str, Any]:
    ctx = owner.ctx
    stages = [{"name": "Lead", "probability": 10}, {"name": "Proposal", "probability": 60}]
    pipeline = execute(
        crm, CreatePipeline.model_validate({"name": "Sales", "stages": stages}), ctx
    ).id
    before = write_batch(crm, ctx, pipeline, 0)  # there before the import
    imported = replace(ctx, source="import", import_batch="batch-1")
    batch = [write_batch(crm, imported, pipeline, n) for n in (1, 2, 3)]
    # The batch also changed a record it did not create.
    execute(crm, UpdateAccount(account_id=before["account"], industry="Imported"), imported)
    return {"before": before, "batch": batch}


def current_rows(crm: Crm) -> dict[str, list[str]]:
    """Every row of every current read model (not the audit log), as text per table."""
    reads = ReadModels(crm.recorder, None)
    try:
        reads.runner.catch_up()
        tables = content(list(reads.stores.values()))
    finally:
        reads.close()
    return {
        name: [repr(row) for row in rows.rows]
        for name, rows in tables.items()
        if name not in (*AUDIT_TABLES, *INTERNAL_TABLES, "projection_positions")
    }


def mentions(rows: dict[str, list[str]], record_id: UUID) -> list[str]:
    needles = (str(record_id), repr(record_id))
    return [f"{t}: {r}" for t, table in rows.items() for r in table if any(n in r for n in needles)]


def test_a_revert_takes_back_every_record_the_batch_created_and_nothing_else(
    crm: Crm, owner: Person, story: dict[str, Any]
) -> None:
    rows = current_rows(crm)
    for records in story["batch"]:
        assert mentions(rows, records["deal"]), "the read models held the batch before"
    report = revert_import(crm, "batch-1", owner.ctx)
    assert report.created == {"interaction": 3, "deal": 3, "contact": 3, "account": 3}
    assert (report.reverted, report.already) == (12, 0)
    assert report.changed_only == [story["before"]["account"]]
    assert report.position == crm.position()

    rows = current_rows(crm)
    for records in story["batch"]:
        for record_id in records.values():
            assert mentions(rows, record_id) == []
    for record_id in story["before"].values():
        assert mentions(rows, record_id), "what came before the batch stays"
    for records in story["batch"]:
        assert crm.load(Interaction, records["interaction"]).retracted
        assert crm.load(Deal, records["deal"]).removed
        assert crm.load(Contact, records["contact"]).removed
        assert crm.load(Account, records["account"]).removed
    # The imported e-mail addresses are free again.
    execute(
        crm,
        CreateContact.model_validate({"first_name": "X", "emails": ["i1@example.com"]}),
        owner.ctx,
    )


def test_a_second_revert_writes_nothing(crm: Crm, owner: Person, story: dict[str, Any]) -> None:
    revert_import(crm, "batch-1", owner.ctx)
    head = crm.position()
    again = revert_import(crm, "batch-1", owner.ctx)
    assert (again.reverted, again.already, again.position) == (0, 12, 0)
    assert crm.position() == head


def test_an_unknown_batch_or_a_sales_rep_is_refused(
    crm: Crm, owner: Person, story: dict[str, Any]
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    head = crm.position()
    with pytest.raises(UnknownBatchError):
        revert_import(crm, "no-such-batch", owner.ctx)
    with pytest.raises(NotPermittedError, match="your roles reach"):
        revert_import(crm, "batch-1", rep.ctx)
    assert crm.position() == head


def test_over_http_and_on_the_command_line(
    crm: Crm,
    store: Store,
    api: httpx.Client,
    story: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unknown = api.post("/imports/nothing-here/revert")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    reply = api.post("/imports/batch-1/revert")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["reverted"] == 12
    assert body["position"] == crm.position()
    # The board no longer shows the batch's deals once it has caught up.
    board = api.get("/board", params={"min_position": body["position"]})
    assert board.status_code == 200
    for records in story["batch"]:
        assert str(records["deal"]) not in board.text

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    runner = CliRunner()
    env = cli_environment(store)
    again = runner.invoke(cli, ["revert-import", "batch-1"], env=env)
    assert again.exit_code == 0, again.output
    assert "0 taken back now, 12 already taken back" in again.output
    missing = runner.invoke(cli, ["revert-import", "nope"], env=env)
    assert missing.exit_code == 1
    assert "no event of the store belongs to import batch nope" in missing.output


def test_a_file_imported_with_crm_import_is_reverted_whole(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    from tests.commands.test_importing import CSV, import_file, pipeline

    pipeline(crm, owner)
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    imported = import_file(crm, owner, path)
    ids = [
        n.originator_id
        for n in crm.recorder.select_notifications(start=1, limit=100_000)
        if n.originator_version == 1 and n.topic.split(":")[1].split(".")[0] in REVERTED_KINDS
    ]
    assert len(ids) == imported.written
    report = revert_import(crm, imported.batch_id, owner.ctx)
    assert report.reverted == imported.written
    rows = current_rows(crm)
    for record_id in ids:
        assert mentions(rows, UUID(str(record_id))) == []
