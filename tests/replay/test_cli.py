"""``crm replay <kind> <id>`` and ``crm history <kind> <id>`` on both stores, through the
real Typer app; bad ids, kinds, times and versions are a one-line error and exit 1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from api import cli  # noqa: F401  (registers every command on the app)
from api.cli_common import app
from api.cli_records import parse_moment
from api.schemas import DealPublic, public_json
from commands.app import Crm
from commands.deals import MoveDeal, OpenDeal, WinDeal
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from domain.deal import Deal
from replay.records import history
from tests.conftest import Person, Store


@pytest.fixture
def cli_env(store: Store, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `crm` command line on the test's store."""
    monkeypatch.chdir(tmp_path)
    env = store.env
    if store.kind == "sqlite":
        monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
        assert env["SQLITE_DBNAME"] == str(tmp_path / "events.sqlite")
    else:
        url = (
            f"postgresql://{env['POSTGRES_USER']}@{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"
            f"/{env['POSTGRES_DBNAME']}?schema={env['POSTGRES_SCHEMA']}"
        )
        monkeypatch.setenv("CRM_DATABASE_URL", url)


@pytest.fixture
def deal(crm: Crm, owner: Person, cli_env: None) -> UUID:
    """A deal at version 3: opened, moved, won."""
    stages = [StageSpec(name="Lead", probability=10), StageSpec(name="Offer", probability=50)]
    pipeline = execute(crm, CreatePipeline(name="Sales", stages=stages), owner.ctx).id
    opened = OpenDeal(title="Rollout", amount="10", currency="EUR", pipeline_id=pipeline)
    deal_id = execute(crm, opened, owner.ctx).id
    execute(crm, MoveDeal(deal_id=deal_id, stage="Offer"), owner.ctx)
    execute(crm, WinDeal(deal_id=deal_id, reason="Best fit"), owner.ctx)
    return deal_id


def crm_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_replay_a_deal_at_a_version_or_as_of_a_moment(crm: Crm, deal: UUID) -> None:
    code, stdout, _ = crm_cli("replay", "deal", str(deal), "--version", "2", "--json")
    assert code == 0
    assert json.loads(stdout) == DealPublic.of(crm.load(Deal, deal, version=2)).model_dump(
        mode="json"
    )
    entries = history(crm, Deal, deal, public_json).entries
    moment = entries[1].recorded_at.astimezone(UTC).isoformat()
    code, stdout, _ = crm_cli("replay", "deal", str(deal), "--as-of", moment, "--json")
    assert code == 0
    assert json.loads(stdout)["version"] == 2
    # A date alone is the end of that day (UTC): today's events all count.
    today = datetime.now(UTC).date().isoformat()
    code, stdout, _ = crm_cli("replay", "deal", str(deal), "--as-of", today, "--json")
    assert json.loads(stdout)["status"] == "won"
    # The table, by default.
    code, stdout, _ = crm_cli("replay", "deal", str(deal))
    assert code == 0
    assert f"deal {deal} at version 3" in stdout
    assert "won" in stdout


def test_history_of_a_deal_as_a_table_and_as_json(crm: Crm, deal: UUID) -> None:
    code, stdout, _ = crm_cli("history", "deal", str(deal))
    assert code == 0
    for action in ("Deal.Opened", "Deal.StageChanged", "Deal.Won"):
        assert action in stdout
    assert '"Best' in stdout  # the changes, folded to the terminal's width

    code, stdout, _ = crm_cli("history", "deal", str(deal), "--json")
    assert code == 0
    entries = json.loads(stdout)
    assert [e["action"] for e in entries] == ["Deal.Opened", "Deal.StageChanged", "Deal.Won"]
    assert entries[2]["changes"] == {
        "status": {"before": "open", "after": "won"},
        "close_reason": {"before": None, "after": "Best fit"},
    }
    expected = history(crm, Deal, deal, public_json).entries
    assert [datetime.fromisoformat(e["recorded_at"]) for e in entries] == [
        e.recorded_at for e in expected
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["replay", "deal", "not-an-id"], "is not an id"),
        (["replay", "deal", "{deal}", "--as-of", "2000-01-01"], "did not exist yet"),
        (["replay", "deal", "{deal}", "--as-of", "2026-09-30T18:00"], "no time zone"),
        (["replay", "deal", "{deal}", "--as-of", "last tuesday"], "not an ISO 8601"),
        (["replay", "deal", "{deal}", "--version", "4"], "no version 4"),
        (["replay", "deal", "{deal}", "--version", "0"], "versions start at 1"),
        (["replay", "deal", "{deal}", "--version", "x"], "whole number"),
        (["replay", "deal", "{deal}", "--version", "1", "--as-of", "2026-01-01"], "not both"),
        (["replay", "account", "{deal}"], "no account with id"),
        (["replay", "deal", "00000000-0000-0000-0000-000000000007"], "no deal with id"),
        (["history", "planet", "{deal}"], "no kind of record 'planet'"),
        (["history", "task", "{deal}"], "no task with id"),
        (["history", "deal", "nope"], "is not an id"),
    ],
)
def test_bad_input_is_a_one_line_error(deal: UUID, args: list[str], says: str) -> None:
    code, stdout, stderr = crm_cli(*(a.format(deal=deal) for a in args))
    assert code == 1
    assert stdout == ""
    assert stderr.startswith("error: ")
    assert says in stderr
    assert stderr.count("\n") == 1


def test_a_moment_is_iso_8601_with_a_zone_or_a_date_meaning_its_end_in_utc() -> None:
    assert parse_moment("2026-09-30") == datetime(2026, 9, 30, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_moment("2026-09-30T18:00+02:00") == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    assert parse_moment("2026-09-30T16:00:00Z") == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    moment = parse_moment(" 2026-09-30T16:00:00.5-07:00 ")
    assert moment - datetime(2026, 9, 30, 23, 0, tzinfo=UTC) == timedelta(milliseconds=500)
