"""The read side's command line for analysts and engineers, run as the real `crm` script:
`crm project`, `crm sql`, `crm export` and `crm rebuild` — on their own, and while a
real `crm serve` holds the read models — on SQLite and on PostgreSQL.

Events come from real commands: `execute(...)` in this process against the same store
before (or while) the CLI runs, and HTTP against the running server.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from api import cli
from api.settings import Settings
from api.wiring import build_crm
from commands.accounts import RegisterAccount
from commands.app import Crm
from commands.context import Context
from commands.handlers import execute
from commands.users import InviteUser
from domain.roles import Authority, Role
from domain.user import User
from projections import analysts, host
from projections.audit import AuditLog
from projections.bulk import BulkBuildError
from projections.events import Recorded
from projections.files import ReadFiles
from projections.host import RETIRE_AFTER_SECONDS, ReadModels
from projections.projector import ProjectionError, Projector, on
from projections.registry import PROJECTORS
from projections.tables import Column, Table
from replay.rebuild import rebuild
from tests.services import free_port, new_schema

BIN = Path(sys.executable).parent
TIMEOUT = 60
HAS_PROC = Path("/proc/self/fd").is_dir()

#: The accounts registered, as rows of `crm sql`.
ACCOUNTS_SQL = (
    "SELECT position, action, CAST(entity_id AS VARCHAR) AS entity_id FROM audit_log "
    "WHERE action = 'Account.Registered' ORDER BY position"
)


# The CRM of one test: its data directory, its store, the `crm` command line on it


@dataclass(frozen=True)
class Site:
    settings: Settings
    env: dict[str, str]
    cwd: Path

    @property
    def files(self) -> ReadFiles:
        return ReadFiles(self.settings.read_dir)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["crm", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def crm(self, *args: str) -> subprocess.CompletedProcess[str]:
        (result,) = self.crm_all([*args])
        return result

    def crm_all(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run several `crm` commands at the same time; their results in order."""
        processes = [(command, self.popen(*command)) for command in commands]
        results: list[subprocess.CompletedProcess[str]] = []
        try:
            for command, process in processes:
                stdout, stderr = process.communicate(timeout=TIMEOUT)
                results.append(
                    subprocess.CompletedProcess(
                        ["crm", *command], process.returncode, stdout, stderr
                    )
                )
        finally:
            for _, process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return results

    @contextmanager
    def store(self) -> Iterator[Crm]:
        crm = build_crm(self.settings)
        try:
            yield crm
        finally:
            crm.close()


def make_site(path: Path, database_url: str | None = None) -> Site:
    data_dir = path / "crm-data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        COLUMNS="250",  # rich tables are not cut to 80 characters
        CRM_DATA_DIR=str(data_dir),
        CRM_PORT=str(free_port()),
    )
    if database_url:
        env["CRM_DATABASE_URL"] = database_url
    settings = Settings(data_dir=data_dir, database_url=database_url, port=int(env["CRM_PORT"]))
    return Site(settings, env, path)


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "sqlite":
        return make_site(tmp_path)
    database_url: str = request.getfixturevalue("postgres_database")
    return make_site(tmp_path, f"{database_url}?schema={new_schema(database_url)}")


@dataclass(frozen=True)
class Seeded:
    token: str
    ctx: Context
    #: (position, id) of each account registered.
    accounts: list[tuple[int, str]]
    head: int


def seed(site: Site, *names: str) -> Seeded:
    """The first Owner and an account per name, through real commands."""
    with site.store() as crm:
        system = Context(actor=Authority.system(), source="cli")
        invited = execute(
            crm, InviteUser(email="owner@example.com", name="O", role=Role.OWNER), system
        )
        ctx = Context(actor=crm.load(User, invited.id).authority, source="cli")
        receipts = [execute(crm, RegisterAccount(name=name), ctx) for name in names]
        return Seeded(
            invited.shown_once["token"],
            ctx,
            [(r.position, str(r.id)) for r in receipts],
            crm.position(),
        )


def register(site: Site, ctx: Context, name: str) -> tuple[int, str]:
    """An account registered by this process: another writer than a running server."""
    with site.store() as crm:
        receipt = execute(crm, RegisterAccount(name=name), ctx)
        return receipt.position, str(receipt.id)


def build_read_models_here(site: Site) -> None:
    """Every read model caught up in the data directory by this process (then closed)."""
    with site.store() as crm:
        reads = ReadModels(crm.recorder, site.settings.read_dir)
        try:
            reads.runner.catch_up()
        finally:
            reads.close()


def all_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a read model file, every row, in a stable order."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}


def assert_fails_in_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    return lines[0]


# A real `crm serve` on a site


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def open_files(self) -> set[Path]:
        fds = Path(f"/proc/{self.process.pid}/fd")
        opened: set[Path] = set()
        for fd in fds.iterdir():
            try:
                opened.add(Path(os.readlink(fd)).resolve())
            except OSError:  # closed meanwhile
                continue
        return opened


@contextmanager
def serving(site: Site) -> Iterator[Server]:
    log = site.cwd / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["crm", "serve"], env=site.env, cwd=site.cwd, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{site.settings.port}", log)
    try:
        wait_until(lambda: healthy(server), "crm serve did not come up", timeout=30)
        yield server
    finally:
        server.stop()


def healthy(server: Server) -> bool:
    assert server.process.poll() is None, "crm serve exited: " + server.log.read_text()
    try:
        return httpx.get(server.url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(condition: Callable[[], bool], message: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


# crm --help, crm project


def test_help_lists_the_read_side_commands_with_their_help(tmp_path: Path) -> None:
    result = make_site(tmp_path).crm("--help")

    assert result.returncode == 0, result.stderr
    for command in (cli.project, cli.rebuild, cli.sql, cli.export_read_model):
        summary = (command.__doc__ or "").split("\n\n")[0]
        assert summary
        assert summary in result.stdout, summary
    for name in ("project", "rebuild", "sql", "export"):
        assert f"│ {name} " in result.stdout


def test_project_once_catches_up_with_the_store_and_prints_progress(site: Site) -> None:
    seeded = seed(site, "Acme", "Globex", "Initech")

    result = site.crm("project", "--once")

    assert result.returncode == 0, result.stderr
    assert f"read models at position {seeded.head}" in result.stdout
    assert "catching up" in result.stderr
    assert f"{seeded.head}/{seeded.head}" in result.stderr
    for name in PROJECTORS:
        with duckdb.connect(str(site.files.current(name)), read_only=True) as con:
            positions = con.execute("SELECT * FROM projection_positions").fetchall()
        assert positions == [(name, seeded.head)]
    with duckdb.connect(str(site.files.current("audit")), read_only=True) as con:
        assert con.execute(ACCOUNTS_SQL).fetchall() == [
            (position, "Account.Registered", account) for position, account in seeded.accounts
        ]


# crm rebuild, on its own


def test_rebuild_swaps_in_new_generations_holding_the_same_rows(site: Site) -> None:
    seed(site, "Acme", "Globex")
    build_read_models_here(site)
    before = {name: site.files.current(name) for name in PROJECTORS}
    rows_before = {name: all_rows(path) for name, path in before.items()}

    result = site.crm("rebuild")

    assert result.returncode == 0, result.stderr
    for name, old in before.items():
        new = site.files.current(name)
        assert new != old
        assert new.exists()
        assert not old.exists()  # nobody held it: removed at once
        assert f"{name}: " in result.stdout
        assert f"swapped in {new.name}" in result.stdout
        assert all_rows(new) == rows_before[name]


def test_a_rebuild_swapped_in_under_a_process_serves_new_events_and_retires_the_old_file(
    site: Site,
) -> None:
    seeded = seed(site, "Acme")
    files = site.files
    with site.store() as crm:
        reads = ReadModels(crm.recorder, site.settings.read_dir, {AuditLog.name: AuditLog})
        try:
            reads.runner.catch_up()
            old = files.current("audit")

            rebuilt = rebuild(crm.recorder, files, "audit", AuditLog)
            # Written while the rebuild waits to be swapped in: only the old one has it.
            during = execute(crm, RegisterAccount(name="During"), seeded.ctx)
            reads.runner.catch_up()

            assert rebuilt.path == files.current("audit") != old
            assert rebuilt.old_removed is False  # this process still holds it
            assert old.exists()
            reads.maintain()  # what the runner does between two batches
            store = reads.store("audit")
            assert store.path == rebuilt.path
            # The new generation caught up before the swap: reads never go back in time.
            assert store.position("audit") == during.position
            after = execute(crm, RegisterAccount(name="After"), seeded.ctx)
            reads.runner.catch_up()
            con = store.reader()
            try:
                found = con.execute(ACCOUNTS_SQL).fetchall()
            finally:
                con.close()
            assert [position for position, _, _ in found] == [
                seeded.accounts[0][0],
                during.position,
                after.position,
            ]

            reads.close_retired(now=time.monotonic() + RETIRE_AFTER_SECONDS - 5)
            assert old.exists()
            reads.close_retired(now=time.monotonic() + RETIRE_AFTER_SECONDS + 1)
            assert not old.exists()
            assert not old.with_name(old.name + ".wal").exists()
        finally:
            reads.close()
    assert all_rows(rebuilt.path)["audit_log"][-1][0] == after.position


def test_a_rebuild_held_open_by_another_reader_is_swapped_in_later(site: Site) -> None:
    seed(site, "Acme")
    files = site.files
    with site.store() as crm:
        reads = ReadModels(crm.recorder, site.settings.read_dir, {AuditLog.name: AuditLog})
        try:
            reads.runner.catch_up()
            old = files.current("audit")
            rebuilt = rebuild(crm.recorder, files, "audit", AuditLog)
            # Another process (as `crm sql` does for a moment) reads the new file.
            holder = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
                    "print('open', flush=True); sys.stdin.read()",
                    str(rebuilt.path),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "open"
                reads.maintain()  # must not fail: the runner would stop
                assert reads.store("audit").path == old
            finally:
                holder.communicate(input="", timeout=TIMEOUT)
            reads.maintain()
            assert reads.store("audit").path == rebuilt.path
        finally:
            reads.close()


class FailingAudit(AuditLog):
    """The audit log, with a handler that fails on the second account (and no bulk
    path, so the rebuild goes through the handlers)."""

    def on_any(self, event: Recorded) -> None:
        if event.name == "Account.Registered" and event.data["name"] == "Globex":
            raise RuntimeError("boom")
        super().on_any(event)

    build_in_bulk = Projector.build_in_bulk


class FailingBulkAudit(AuditLog):
    """The audit log, with a bulk build that fails after writing rows."""

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        super().build_in_bulk(con)
        raise RuntimeError("boom")


@pytest.mark.parametrize("failing", [FailingAudit, FailingBulkAudit])
def test_a_failed_rebuild_leaves_the_read_model_untouched(
    site: Site, failing: type[AuditLog]
) -> None:
    seed(site, "Acme", "Globex")
    build_read_models_here(site)
    files = site.files
    pointer = files.pointer("audit").read_text()
    old = files.current("audit")
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    listing = sorted(p.name for p in site.settings.read_dir.iterdir())

    with site.store() as crm, pytest.raises((ProjectionError, BulkBuildError), match="boom"):
        rebuild(crm.recorder, files, "audit", failing, batch_size=2)

    assert files.pointer("audit").read_text() == pointer
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in site.settings.read_dir.iterdir()) == listing


# crm sql and crm export, on read models nobody holds


@dataclass(frozen=True)
class Analysed:
    site: Site
    seeded: Seeded


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    """Read models built from a few commands (SQLite: these commands never open the store)."""
    site = make_site(tmp_path_factory.mktemp("analysts"))
    seeded = seed(site, "Acme", "Globex", "Initech")
    build_read_models_here(site)
    return Analysed(site, seeded)


def test_sql_prints_the_rows_as_a_table_csv_or_json(analysed: Analysed) -> None:
    expected = [
        (position, "Account.Registered", account) for position, account in analysed.seeded.accounts
    ]

    table, as_json, as_csv = analysed.site.crm_all(
        ["sql", ACCOUNTS_SQL],
        ["sql", ACCOUNTS_SQL, "--format", "json"],
        ["sql", "SELECT * FROM projection_positions ORDER BY projection", "--format", "csv"],
    )

    for result in (table, as_json):
        assert result.returncode == 0, result.stderr
        assert "3 rows, from live files" in result.stderr
    assert as_csv.returncode == 0, as_csv.stderr
    lines = [line for line in table.stdout.splitlines() if "Account.Registered" in line]
    assert [[cell.strip() for cell in line.split("│")[1:4]] for line in lines] == [
        [str(position), action, account] for position, action, account in expected
    ]
    assert json.loads(as_json.stdout) == [
        {"position": p, "action": a, "entity_id": e} for p, a, e in expected
    ]
    # Every read model, up to the last event.
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["projection", "position"],
        *([name, str(analysed.seeded.head)] for name in sorted(PROJECTORS)),
    ]


def test_sql_joins_the_tables_of_the_read_models(analysed: Analysed) -> None:
    seeded = analysed.seeded
    joined = (
        "SELECT json_extract_string(s.state, '$.name') AS name, l.position, p.position AS at "
        "FROM audit_log l JOIN audit_state s ON s.entity_id = l.entity_id "
        "JOIN projection_positions p ON p.projection = 'audit' "
        "WHERE l.action = 'Account.Registered' ORDER BY l.position"
    )

    join = analysed.site.crm("sql", joined, "--format", "json")

    assert join.returncode == 0, join.stderr
    assert json.loads(join.stdout) == [
        {"name": name, "position": position, "at": seeded.head}
        for name, (position, _) in zip(["Acme", "Globex", "Initech"], seeded.accounts, strict=True)
    ]


def test_sql_refuses_anything_but_a_read_in_one_line(analysed: Analysed) -> None:
    site = analysed.site
    target = site.cwd / "leaked.csv"
    before = all_rows(site.files.current("audit"))

    # (every kind of statement refused: test_only_reads_pass_the_check)
    smuggled, explained, syntax, unknown_column = site.crm_all(
        ["sql", "SELECT 1; DELETE FROM audit_log"],
        ["sql", f"EXPLAIN ANALYZE COPY (SELECT * FROM audit_log) TO '{target}'"],
        ["sql", "SELEC * FROM audit_log"],
        ["sql", "SELECT nope FROM audit_log"],
    )

    assert_fails_in_one_line(smuggled, "only SELECT", "not DELETE")
    assert_fails_in_one_line(explained, "only SELECT", "not EXPLAIN")
    assert_fails_in_one_line(syntax, "syntax error")
    assert_fails_in_one_line(unknown_column, "nope")
    assert not target.exists()
    assert all_rows(site.files.current("audit")) == before


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_log",
        "INSERT INTO audit_log SELECT * FROM audit_log",
        "UPDATE audit_log SET actor = 'x'",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW audit_log",
        "ATTACH 'elsewhere.duckdb' AS elsewhere",
        "DETACH audit",
        "COPY audit_log TO 'out.csv'",
        "COPY (SELECT 1) TO 'out.csv'",
        "EXPORT DATABASE 'out'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "CHECKPOINT",
        "EXPLAIN ANALYZE INSERT INTO audit_log SELECT * FROM audit_log",
        "EXPLAIN (ANALYZE) COPY (SELECT 1) TO 'out.csv'",
        "explain analyze /* */ create table t as select 1",
        "SELECT 1; DELETE FROM audit_log",
    ],
)
def test_only_reads_pass_the_check(analysed: Analysed, statement: str) -> None:
    with analysts.read_models(analysed.site.settings.read_dir, ["audit"]) as (con, _):
        with pytest.raises(analysts.AnalystError, match="only SELECT"):
            analysts.check_read_only(con, statement)
        for read in (
            "SELECT count(*) FROM audit_log",
            "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
            "EXPLAIN SELECT * FROM audit_log",
            "EXPLAIN ANALYZE SELECT * FROM audit_log",
            "DESCRIBE audit_log",
        ):
            analysts.check_read_only(con, read)


def test_an_sql_session_cannot_touch_the_file_system(analysed: Analysed, tmp_path: Path) -> None:
    with analysts.read_models(analysed.site.settings.read_dir, ["audit"]) as (con, source):
        analysts.lock_down(con)
        assert source == "live files"
        (count,) = con.execute("SELECT count(*) FROM audit_log").fetchone() or (0,)
        assert count == len(all_rows(analysed.site.files.current("audit"))["audit_log"]) > 0
        for statement in (
            f"SELECT * FROM read_csv('{analysed.site.files.pointer('audit')}')",
            f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(statement)
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
    assert list(tmp_path.iterdir()) == []


def test_sql_before_any_read_model_exists_says_what_to_run(tmp_path: Path) -> None:
    with (
        pytest.raises(analysts.AnalystError, match="crm project --once"),
        analysts.read_models(tmp_path / "read", ["audit"]),
    ):
        pass


class SeenAccounts(Projector):
    """A second read model, to join with the audit log."""

    name = "seen"

    def declare_tables(self) -> list[Table]:
        self.accounts = Table(
            "seen_accounts",
            [Column("id", "UUID", False), Column("name", "VARCHAR", False)],
            key=["id"],
        )
        return [self.accounts]

    @on("Account.Registered")
    def registered(self, event: Recorded) -> None:
        self.accounts.append((event.aggregate_id, event.data["name"]))


def test_sql_joins_across_read_models(crm: Crm, tmp_path: Path) -> None:
    ctx = Context(actor=Authority.system(), source="cli")
    owner = execute(crm, InviteUser(email="o@example.com", name="O", role=Role.OWNER), ctx)
    ctx = Context(actor=crm.load(User, owner.id).authority, source="cli")
    ids = [execute(crm, RegisterAccount(name=n), ctx).id for n in ("Acme", "Globex")]
    factories: dict[str, Callable[[], Projector]] = {"audit": AuditLog, "seen": SeenAccounts}
    reads = ReadModels(crm.recorder, tmp_path / "read", factories)
    try:
        reads.runner.catch_up()
    finally:
        reads.close()

    with analysts.read_models(tmp_path / "read", ["audit", "seen"]) as (con, _):
        joined = con.execute(
            "SELECT s.name, CAST(l.entity_id AS VARCHAR), l.actor FROM seen_accounts s "
            "JOIN audit_log l ON l.entity_id = s.id ORDER BY l.position"
        ).fetchall()
        positions = con.execute("SELECT * FROM projection_positions ORDER BY 1").fetchall()

    assert joined == [
        ("Acme", str(ids[0]), str(owner.id)),
        ("Globex", str(ids[1]), str(owner.id)),
    ]
    assert positions == [("audit", crm.position()), ("seen", crm.position())]


def test_export_writes_every_table_as_csv_or_parquet_and_names_refer_to_read_models(
    analysed: Analysed,
) -> None:
    site = analysed.site
    as_csv, as_parquet, unknown, not_rebuilt = site.crm_all(
        ["export", "audit", "--format", "csv", "--output", str(site.cwd / "csv")],
        ["export", "audit", "--format", "parquet", "--output", str(site.cwd / "parquet")],
        ["export", "nosuch", "--format", "csv", "--output", str(site.cwd / "nothing")],
        ["rebuild", "audit", "nosuch"],
    )

    assert as_csv.returncode == 0, as_csv.stderr
    assert as_parquet.returncode == 0, as_parquet.stderr
    with duckdb.connect(str(site.files.current("audit")), read_only=True) as con:
        for table in ("audit_log", "audit_state"):
            cursor = con.execute(f"SELECT * FROM {table} ORDER BY ALL")
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
            as_text = con.execute(
                f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM {table} ORDER BY ALL"
            ).fetchall()
            assert f"{table}: {len(rows)} rows" in as_csv.stdout
            assert f"{table}: {len(rows)} rows" in as_parquet.stdout

            with (site.cwd / "csv" / f"{table}.csv").open(newline="") as handle:
                written = list(csv.reader(handle))
            assert written[0] == columns
            assert sorted(written[1:]) == sorted(
                [["" if v is None else v for v in row] for row in as_text]
            )

            parquet = site.cwd / "parquet" / f"{table}.parquet"
            assert pq.read_table(parquet).num_rows == len(rows)
            assert pq.read_schema(parquet).names == columns
            assert con.execute(f"SELECT * FROM '{parquet}' ORDER BY ALL").fetchall() == rows
    assert len(rows) == 4  # audit_state: the owner and three accounts
    assert sorted(p.name for p in (site.cwd / "csv").iterdir()) == [
        "audit_log.csv",
        "audit_state.csv",
    ]
    assert_fails_in_one_line(unknown, "no read model nosuch", *PROJECTORS)
    assert not (site.cwd / "nothing").exists()
    assert_fails_in_one_line(not_rebuilt, "no read model nosuch", *PROJECTORS)


# While `crm serve` holds the read models


def test_while_serve_runs_project_is_refused_and_sql_and_export_read_a_snapshot(
    site: Site,
) -> None:
    seeded = seed(site, "Acme")
    with serving(site) as server:
        refused = site.crm("project", "--once")
        headers = {"Authorization": f"Bearer {seeded.token}"}
        posted = httpx.post(
            server.url + "/accounts", json={"name": "Globex"}, headers=headers, timeout=30
        )
        assert posted.status_code == 201, posted.text
        # Written by another process: the server's runner has not been told.
        elsewhere = register(site, seeded.ctx, "Initech")
        accounts = [
            *seeded.accounts,
            (posted.json()["position"], posted.json()["id"]),
            elsewhere,
        ]

        # Two analysts at once, without waiting for anything.
        query, export = site.crm_all(
            ["sql", ACCOUNTS_SQL, "--format", "json"],
            ["export", "audit", "--format", "parquet", "--output", str(site.cwd / "out")],
        )

        listing = [p.name for p in site.settings.read_dir.iterdir()]
        served = httpx.get(
            server.url + "/audit",
            params={"limit": 1000, "min_position": elsewhere[0]},
            headers=headers,
            timeout=30,
        )

    assert_fails_in_one_line(refused, "open in another process", "crm serve")
    assert query.returncode == 0, query.stderr
    assert "from a snapshot" in query.stderr
    assert json.loads(query.stdout) == [
        {"position": position, "action": "Account.Registered", "entity_id": account}
        for position, account in accounts
    ]
    assert export.returncode == 0, export.stderr
    assert served.status_code == 200, served.text
    items = served.json()["items"]
    exported = pq.read_table(site.cwd / "out" / "audit_log.parquet").to_pylist()
    assert [row["position"] for row in exported] == [item["position"] for item in items]
    assert [row["action"] for row in exported] == [item["action"] for item in items]
    assert not [name for name in listing if name.startswith(host.SNAPSHOT_PREFIX)]


@dataclass
class Hammer:
    """Writes and reads the audit log over HTTP, one request after another, until stopped."""

    url: str
    token: str
    reads: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            n = 0
            while not self.stopped.is_set():
                n += 1
                if n % 3 == 0:
                    posted = client.post("/accounts", json={"name": f"During {n}"})
                    if posted.status_code != 201:
                        self.failures.append(f"POST {posted.status_code} {posted.text}")
                page = client.get("/audit", params={"limit": 1000})
                if page.status_code != 200:
                    self.failures.append(f"GET {page.status_code} {page.text}")
                    continue
                self.reads.append(len(page.json()["items"]))
                time.sleep(0.02)  # pacing only: two cores are shared


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc to see which files the server holds")
def test_rebuild_while_serve_runs_swaps_in_without_interrupting_reads(site: Site) -> None:
    seeded = seed(site, *(f"Account {n}" for n in range(20)))
    with serving(site) as server:
        headers = {"Authorization": f"Bearer {seeded.token}"}
        old = site.files.current("audit").resolve()
        wait_until(lambda: old in server.open_files(), "crm serve did not open the audit log")
        hammer = Hammer(server.url, seeded.token)
        thread = threading.Thread(target=hammer.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(hammer.reads) >= 3, "no reads before the rebuild")
            result = site.crm("rebuild", "audit")
            assert result.returncode == 0, result.stderr
            new = site.files.current("audit").resolve()
            assert new != old
            wait_until(lambda: new in server.open_files(), "crm serve did not switch")
            swapped_at = len(hammer.reads)
            wait_until(lambda: len(hammer.reads) >= swapped_at + 3, "no reads after the swap")
        finally:
            hammer.stopped.set()
            thread.join(timeout=TIMEOUT)
        # Retired, not yet removed: reads that began before the swap may still use it.
        assert old.exists()
        assert old in server.open_files()

        posted = httpx.post(
            server.url + "/accounts", json={"name": "After"}, headers=headers, timeout=30
        )
        assert posted.status_code == 201, posted.text
        after = posted.json()
        page = httpx.get(
            server.url + "/audit",
            params={"entity_id": after["id"], "min_position": after["position"]},
            headers=headers,
            timeout=30,
        )
        server.stop()  # shutting down disposes of the retired generation

    assert hammer.failures == []
    assert hammer.reads == sorted(hammer.reads)  # never a step back in time
    assert page.status_code == 200, page.text
    assert [item["position"] for item in page.json()["items"]] == [after["position"]]
    assert not old.exists()
    assert site.files.current("audit").resolve() == new
    (last,) = [row for row in all_rows(new)["audit_log"] if str(row[5]) == after["id"]]
    assert last[0] == after["position"]
