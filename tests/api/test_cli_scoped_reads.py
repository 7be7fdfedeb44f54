"""The command line as a user (`--as EMAIL`), run as the real `crm` script: `crm sql`,
`crm export`, `crm replay sql` and `crm history` show only the rows and records that
user may read by the permission table; without `--as` they are the operator's (all)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from commands.accounts import RegisterAccount
from commands.contacts import CreateContact
from commands.context import Context
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from domain.roles import Authority, Role
from tests.api.test_cli_reads import (
    Site,
    assert_fails_in_one_line,
    build_read_models_here,
    make_site,
)
from tests.api.test_read_permissions import act_as
from tests.conftest import invite

REP = "rep@example.com"


@dataclass(frozen=True)
class Owned:
    user: str
    account: str
    contact: str
    deal: str


@dataclass(frozen=True)
class Scoped:
    site: Site
    rep: Owned
    other: Owned


def records_of(site: Site, user_id: UUID, pipeline: UUID) -> Owned:
    with site.store() as crm:
        ctx = act_as(user_id)
        account = execute(crm, RegisterAccount(name=f"Account {user_id}"), ctx).id
        contact = execute(crm, CreateContact(first_name="Ada", account_id=account), ctx).id
        deal = OpenDeal(
            title=f"Deal {user_id}", amount=Decimal(5), currency="EUR", pipeline_id=pipeline
        )
        return Owned(str(user_id), str(account), str(contact), str(execute(crm, deal, ctx).id))


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Scoped:
    site = make_site(tmp_path_factory.mktemp("scoped"))
    with site.store() as crm:
        invite(crm, "owner@example.com", Role.OWNER)
        rep = invite(crm, REP, Role.SALES_REP).user.id
        other = invite(crm, "other@example.com", Role.SALES_REP).user.id
        pipeline = CreatePipeline(name="Sales", stages=[StageSpec(name="Lead", probability=10)])
        system = Context(actor=Authority.system(), source="cli")
        pipeline_id = execute(crm, pipeline, system).id
    scoped = Scoped(site, records_of(site, rep, pipeline_id), records_of(site, other, pipeline_id))
    build_read_models_here(site)
    return scoped


def sql(site: Site, query: str, *options: str) -> list[dict[str, str]]:
    result = site.crm("sql", query, "--format", "json", *options)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str]] = json.loads(result.stdout)
    return rows


def ids(rows: list[dict[str, str]]) -> set[str]:
    return {row["id"] for row in rows}


def test_sql_as_a_rep_sees_only_their_rows(scoped: Scoped) -> None:
    site, rep, other = scoped.site, scoped.rep, scoped.other
    contacts = "SELECT CAST(id AS VARCHAR) AS id FROM directory_contacts"
    deals = "SELECT CAST(deal_id AS VARCHAR) AS id FROM board_deals"
    assert ids(sql(site, contacts, "--as", REP)) == {rep.contact}
    assert ids(sql(site, deals, "--as", REP)) == {rep.deal}
    # Accounts: a rep reads them all.
    accounts = "SELECT CAST(id AS VARCHAR) AS id FROM directory_accounts"
    assert {rep.account, other.account} <= ids(sql(site, accounts, "--as", REP))
    # The audit log: none of it; the positions: all of them.
    assert sql(site, "SELECT * FROM audit_log", "--as", REP) == []
    assert len(sql(site, "SELECT * FROM projection_positions", "--as", REP)) == 5
    # The operator sees everything.
    assert ids(sql(site, contacts)) == {rep.contact, other.contact}
    assert ids(sql(site, deals)) == {rep.deal, other.deal}


def test_sql_as_a_user_cannot_reach_the_files_behind_the_rows(scoped: Scoped) -> None:
    result = scoped.site.crm("sql", "SELECT * FROM directory.main.directory_contacts", "--as", REP)
    assert_fails_in_one_line(result, "directory")


def test_sql_as_an_unknown_user_fails_in_one_line(scoped: Scoped) -> None:
    result = scoped.site.crm("sql", "SELECT 1", "--as", "nobody@example.com")
    assert_fails_in_one_line(result, "no user with e-mail nobody@example.com")


def test_export_as_a_rep_writes_only_their_rows(scoped: Scoped, tmp_path: Path) -> None:
    site, rep = scoped.site, scoped.rep
    result = site.crm("export", "directory", "--as", REP, "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr

    def column(table: str, name: str) -> list[str]:
        with (tmp_path / f"{table}.csv").open(newline="") as handle:
            return [row[name] for row in csv.DictReader(handle)]

    assert column("directory_contacts", "id") == [rep.contact]
    assert column("directory_deals", "id") == []  # no owner there: only for `all`
    assert rep.account in column("directory_accounts", "id")
    assert "directory_deals: 0 rows" in result.stdout


def test_replay_sql_as_a_rep_sees_only_their_rows(scoped: Scoped) -> None:
    site, rep, other = scoped.site, scoped.rep, scoped.other
    query = "SELECT CAST(deal_id AS VARCHAR) AS id FROM analytics_deals"
    mine = site.crm("replay", "sql", query, "--format", "json", "--as", REP)
    assert mine.returncode == 0, mine.stderr
    assert ids(json.loads(mine.stdout)) == {rep.deal}
    everyone = site.crm("replay", "sql", query, "--format", "json")
    assert ids(json.loads(everyone.stdout)) == {rep.deal, other.deal}


def test_history_and_replay_of_a_record_follow_its_read_scope(scoped: Scoped) -> None:
    site, rep, other = scoped.site, scoped.rep, scoped.other
    own, theirs, record = site.crm_all(
        ["history", "deal", rep.deal, "--json", "--as", REP],
        ["history", "deal", other.deal, "--json", "--as", REP],
        ["replay", "deal", other.deal, "--version", "1", "--as", REP],
    )
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)[0]["version"] == 1
    assert_fails_in_one_line(theirs, "read deal")
    assert_fails_in_one_line(record, "read deal")
