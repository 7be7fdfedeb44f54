"""Tamper evidence: edits made directly in the database, each found and named by the
walk; signed checkpoints against whoever rewrites the history and the chain alike."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from commands.accounts import RegisterAccount, UpdateAccount
from commands.app import Crm, store_env
from commands.chain import (
    AdoptError,
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
    adopt_unchained,
    chain_rows,
)
from commands.handlers import execute
from domain.integrity import chain_table_name
from domain.roles import Role
from replay.verify import (
    StoreAddress,
    Verified,
    VerifyError,
    generate_key,
    load_private_key,
    load_public_key,
    read_checkpoint,
    sign_checkpoint,
    verify,
    verify_snapshots,
)
from tests.conftest import Person, Store, invite

#: Events written by :func:`history`: an Owner (its invitation) and 12 account events.
ACCOUNTS = 4


def history(crm: Crm, owner: Person) -> int:
    """A few records with several versions each; the head position."""
    for n in range(ACCOUNTS):
        account = execute(crm, RegisterAccount(name=f"Account {n}"), owner.ctx).id
        execute(crm, UpdateAccount(account_id=account, industry="Tools"), owner.ctx)
        execute(crm, UpdateAccount(account_id=account, country="DE"), owner.ctx)
    return crm.position()


class Database:
    """Direct SQL on a test store's tables, as someone with write access would do it."""

    def __init__(self, store: Store, crm: Crm) -> None:
        self.kind = store.kind
        self.env = store.env
        recorder = crm.recorder
        assert isinstance(
            recorder, ChainedSQLiteApplicationRecorder | ChainedPostgresApplicationRecorder
        )
        self.events = recorder.events_table_name
        self.chain = chain_table_name(self.events)
        self.id = "rowid" if self.kind == "sqlite" else "notification_id"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.kind == "sqlite":
            lite = sqlite3.connect(self.env["SQLITE_DBNAME"])
            try:
                yield lite
                lite.commit()
            finally:
                lite.close()
            return
        env = self.env
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            dbname=env["POSTGRES_DBNAME"],
            options=f"-c search_path={env['POSTGRES_SCHEMA']}",
        ) as con:
            yield con

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            statement = statement.replace("?", "%s")
        with self.connect() as con:
            cursor = con.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []

    def state(self, position: int) -> bytes:
        rows = self.run(f"SELECT state FROM {self.events} WHERE {self.id} = ?", (position,))
        return bytes(rows[0][0])

    def position_of(self, text: bytes) -> int:
        """The first position whose state holds ``text``."""
        rows = self.run(f"SELECT {self.id}, state FROM {self.events} ORDER BY {self.id}")
        return next(int(row[0]) for row in rows if text in bytes(row[1]))

    def set_state(self, position: int, state: bytes) -> None:
        self.run(f"UPDATE {self.events} SET state = ? WHERE {self.id} = ?", (state, position))

    def swap(self, a: int, b: int) -> None:
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.run(f"UPDATE {self.events} SET {self.id} = ? WHERE {self.id} = ?", (new, old))

    def delete_events(self, condition: str, *params: Any) -> None:
        self.run(f"DELETE FROM {self.events} WHERE {self.id} {condition}", params)

    def delete_links(self, condition: str, *params: Any) -> None:
        self.run(f"DELETE FROM {self.chain} WHERE position {condition}", params)

    def insert_event(self, position: int, record: UUID, topic: str, state: bytes) -> None:
        if self.kind == "sqlite":
            self.run(
                f"INSERT INTO {self.events} (rowid, originator_id, originator_version, topic, "
                "state) VALUES (?, ?, ?, ?, ?)",
                (position, record.hex, 1, topic, state),
            )
        else:
            self.run(
                f"INSERT INTO {self.events} (notification_id, originator_id, "
                "originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
                (position, record, 1, topic, state),
            )

    def rechain(self) -> None:
        """Recompute the whole chain from the events as they are now: what an attacker
        who knows the algorithm does after editing events."""
        rows = self.run(
            f"SELECT {self.id}, originator_id, originator_version, topic, state "
            f"FROM {self.events} ORDER BY {self.id}"
        )
        from eventsourcing.persistence import StoredEvent

        stored = [StoredEvent(UUID(str(r[1])), r[2], r[3], bytes(r[4])) for r in rows]
        links = chain_rows(None, [r[0] for r in rows], stored)
        self.run(f"DELETE FROM {self.chain}")
        with self.connect() as con:
            insert = f"INSERT INTO {self.chain} (position, previous, digest, link) VALUES "
            if self.kind == "sqlite":
                con.executemany(insert + "(?, ?, ?, ?)", links)
            else:
                con.cursor().executemany(insert + "(%s, %s, %s, %s)", links)


@pytest.fixture
def database(store: Store, crm: Crm) -> Database:
    return Database(store, crm)


def check(crm: Crm) -> Verified:
    return verify(crm.recorder)


def test_an_untouched_store_verifies_ok(crm: Crm, owner: Person) -> None:
    head = history(crm, owner)
    verified = check(crm)
    assert verified.ok, verified.problem
    assert (verified.events, verified.position) == (head, head)
    assert len(verified.head) == 32


def test_one_byte_of_a_payload_changed_is_named(
    crm: Crm, owner: Person, database: Database
) -> None:
    history(crm, owner)
    position = database.position_of(b"Account 2")
    state = bytearray(database.state(position))
    state[state.index(b"Account 2") + 8] ^= 0x01  # "Account 2" -> "Account 3"
    database.set_state(position, bytes(state))
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("altered", position)
    assert f"position {position}:" in problem.message
    assert "altered" in problem.message


def test_a_deleted_event_is_named(crm: Crm, owner: Person, database: Database) -> None:
    history(crm, owner)
    database.delete_events("= ?", 8)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("removed", 8)


def test_an_event_deleted_with_its_link_is_named(
    crm: Crm, owner: Person, database: Database
) -> None:
    history(crm, owner)
    database.delete_events("= ?", 8)
    database.delete_links("= ?", 8)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("removed", 8)
    assert "position 9 follows it" in problem.message


def test_two_swapped_events_are_named(crm: Crm, owner: Person, database: Database) -> None:
    history(crm, owner)
    database.swap(7, 11)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("reordered", 7)
    assert "recorded at position 11" in problem.message


def test_a_forged_event_is_named(crm: Crm, owner: Person, database: Database) -> None:
    head = history(crm, owner)
    state = database.state(head)
    database.insert_event(head + 1, uuid4(), "domain.account:Account.Registered", state)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("inserted", head + 1)
    assert "Account.Registered" in problem.message


def test_a_forged_event_in_a_gap_is_named(crm: Crm, owner: Person, database: Database) -> None:
    history(crm, owner)
    database.delete_events("= ?", 5)  # a gap, as PostgreSQL leaves after a rollback...
    database.delete_links("= ?", 5)
    database.rechain()  # ...and a chain made consistent with it
    assert check(crm).ok
    database.insert_event(5, uuid4(), "domain.account:Account.Registered", database.state(6))
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("inserted", 5)


def test_an_event_edited_in_below_position_one_is_named(
    crm: Crm, owner: Person, database: Database
) -> None:
    """The library loads a record's events whatever their position: one at position 0
    (or below) is as much part of the record as any."""
    history(crm, owner)
    state = database.state(database.position_of(b"Account 1"))
    database.insert_event(0, uuid4(), "domain.account:Account.Registered", state)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("inserted", 0)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE stored_events SET originator_id = upper(originator_id) WHERE rowid = ?",
        "UPDATE stored_events SET originator_version = originator_version + 0.5 WHERE rowid = ?",
        "UPDATE stored_events SET state = CAST(state AS TEXT) WHERE rowid = ?",
    ],
    ids=["id spelled otherwise", "version not a whole number", "state as text"],
)
def test_sqlite_columns_edited_into_another_form_are_named(
    edit: str, tmp_path: Path, owner_on_sqlite: tuple[Crm, Person]
) -> None:
    """SQLite keeps whatever it is given, and the library reads it as it is: an id in
    capitals is another record to it, so the edit is an alteration even though the
    bytes it spells are the same."""
    crm, owner = owner_on_sqlite
    history(crm, owner)
    con = sqlite3.connect(tmp_path / "events.sqlite")
    con.execute(edit, [9])
    con.commit()
    con.close()
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("altered", 9)


@pytest.fixture
def owner_on_sqlite(tmp_path: Path) -> Iterator[tuple[Crm, Person]]:
    crm = Crm(env=store_env(None, str(tmp_path / "events.sqlite")))
    yield crm, invite(crm, "owner@example.com", Role.OWNER)
    crm.close()


def test_a_truncated_tail_is_named(crm: Crm, owner: Person, database: Database) -> None:
    head = history(crm, owner)
    database.delete_events("> ?", head - 3)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("truncated", head - 2)
    assert "3 more event(s)" in problem.message


def test_an_altered_link_is_named(crm: Crm, owner: Person, database: Database) -> None:
    history(crm, owner)
    database.run(f"UPDATE {database.chain} SET link = ? WHERE position = ?", (bytes(32), 4))
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("chain altered", 4)


def test_writes_after_verifying_extend_a_valid_chain(crm: Crm, owner: Person) -> None:
    history(crm, owner)
    first = check(crm)
    head = history(crm, owner)
    second = check(crm)
    assert second.ok
    assert second.position == head > first.position


def test_concurrent_writers_keep_one_chain(store: Store, crm: Crm, owner: Person) -> None:
    """Two applications (two connection pools, as two processes) and many threads."""
    other = store.open()
    try:

        def register(n: int) -> None:
            app = crm if n % 2 else other
            execute(app, RegisterAccount(name=f"Concurrent {n}"), owner.ctx)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(register, range(60)))
    finally:
        other.close()
    verified = check(crm)
    assert verified.ok, verified.problem
    assert verified.events == crm.position()


# --- stores written before the chain existed ----------------------------------------


def old_store(database: Database, chained_from: int | None) -> None:
    """Make the store look written by a release without the chain: no links at all, or
    links only from ``chained_from`` on, started afresh there (as the first write after
    the upgrade started them)."""
    database.delete_links("> ?", 0)
    if chained_from is None:
        return
    rows = database.run(
        f"SELECT {database.id}, originator_id, originator_version, topic, state "
        f"FROM {database.events} WHERE {database.id} >= ? ORDER BY {database.id}",
        (chained_from,),
    )
    stored = [StoredEvent(UUID(str(r[1])), r[2], r[3], bytes(r[4])) for r in rows]
    with database.connect() as con:
        insert = f"INSERT INTO {database.chain} (position, previous, digest, link) VALUES "
        links = chain_rows(None, [r[0] for r in rows], stored)
        if database.kind == "sqlite":
            con.executemany(insert + "(?, ?, ?, ?)", links)
        else:
            con.cursor().executemany(insert + "(%s, %s, %s, %s)", links)


@pytest.mark.parametrize("chained_from", [None, 9], ids=["never chained", "chained since 9"])
def test_an_old_store_is_adopted_once(
    chained_from: int | None, crm: Crm, owner: Person, database: Database
) -> None:
    head = history(crm, owner)
    old_store(database, chained_from)
    problem = check(crm).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("inserted", 1)
    assert adopt_unchained(recorder_of(crm)) == (chained_from or head + 1) - 1
    verified = check(crm)
    assert verified.ok, verified.problem
    assert verified.events == head
    assert adopt_unchained(recorder_of(crm)) == 0
    history(crm, owner)  # writes go on chaining from the adopted head
    assert check(crm).ok


def test_adoption_refuses_what_is_not_an_old_store(
    crm: Crm, owner: Person, database: Database
) -> None:
    history(crm, owner)
    old_store(database, 9)
    database.delete_links("= ?", 11)  # an event after the chain began, without its link
    with pytest.raises(AdoptError, match="position 11 is not in the chain"):
        adopt_unchained(recorder_of(crm))
    old_store(database, 9)
    position = database.position_of(b"Account 3")
    database.set_state(position, database.state(position) + b" ")
    with pytest.raises(AdoptError, match="does not match its events"):
        adopt_unchained(recorder_of(crm))
    assert check(crm).problem is not None  # nothing was adopted


def recorder_of(crm: Crm) -> ChainedSQLiteApplicationRecorder | ChainedPostgresApplicationRecorder:
    recorder = crm.recorder
    assert isinstance(
        recorder, ChainedSQLiteApplicationRecorder | ChainedPostgresApplicationRecorder
    )
    return recorder


# --- snapshots -----------------------------------------------------------------------


@pytest.fixture
def snapshotting(store: Store) -> Iterator[Crm]:
    """The test's store, written with a snapshot every 2 events of a record."""
    app = Crm(env={**store.env, "CRM_SNAPSHOT_EVERY": "2"})
    yield app
    app.close()


def test_untouched_snapshots_verify_ok(snapshotting: Crm, owner: Person) -> None:
    history(snapshotting, owner)
    checked = verify_snapshots(snapshotting)
    assert checked.ok, checked.problem
    assert checked.snapshots >= ACCOUNTS  # each account has 3 events: one at version 2


@pytest.mark.parametrize("edit", ["state", "forged"])
def test_an_edited_or_forged_snapshot_is_named(
    edit: str, snapshotting: Crm, owner: Person, database: Database
) -> None:
    """A snapshot is what a record loads from: edited, the record reads otherwise while
    every event still verifies."""
    history(snapshotting, owner)
    table = "stored_snapshots" if database.kind == "sqlite" else "crm_snapshots"
    rows = database.run(f"SELECT originator_id, originator_version, state FROM {table}")
    record, version, state = next(
        (r[0], r[1], bytes(r[2])) for r in rows if b"Account 1" in bytes(r[2])
    )
    if edit == "state":
        database.run(
            f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (state.replace(b"Account 1", b"Account 8"), record, version),
        )
    else:  # the same snapshot claimed for a version the record never reached
        database.run(
            f"UPDATE {table} SET originator_version = 99 "
            "WHERE originator_id = ? AND originator_version = ?",
            (record, version),
        )
    assert check(snapshotting).ok  # the events are untouched
    problem = verify_snapshots(snapshotting).problem
    assert problem is not None
    assert problem.kind == "snapshot altered"
    assert str(UUID(str(record))) in problem.message
    assert ("forged" in problem.message) == (edit == "forged")


# --- checkpoints -------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    generate_key(path)
    return path


def checkpoint_of(crm: Crm, key_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(sign_checkpoint(check(crm), load_private_key(key_file)).to_json())
    return path


def test_a_checkpoint_proves_history_unchanged_while_it_grows(
    crm: Crm, owner: Person, key_file: Path, tmp_path: Path
) -> None:
    history(crm, owner)
    path = checkpoint_of(crm, key_file, tmp_path)
    history(crm, owner)
    proven = read_checkpoint(path, load_public_key(key_file))
    assert verify(crm.recorder, checkpoint=proven).ok


def test_a_tail_truncated_after_a_checkpoint_is_named(
    crm: Crm, owner: Person, database: Database, key_file: Path, tmp_path: Path
) -> None:
    head = history(crm, owner)
    path = checkpoint_of(crm, key_file, tmp_path)
    database.delete_events("> ?", head - 2)
    database.delete_links("> ?", head - 2)  # consistent: the walk alone sees nothing wrong
    assert check(crm).ok
    proven = read_checkpoint(path, load_public_key(key_file))
    problem = verify(crm.recorder, checkpoint=proven).problem
    assert problem is not None
    assert problem.kind == "truncated"
    assert f"up to position {head}" in problem.message


def test_history_rewritten_with_its_chain_fails_against_a_checkpoint(
    crm: Crm, owner: Person, database: Database, key_file: Path, tmp_path: Path
) -> None:
    history(crm, owner)
    path = checkpoint_of(crm, key_file, tmp_path)
    position = database.position_of(b"Account 1")
    database.set_state(position, database.state(position).replace(b"Account 1", b"Account 7"))
    database.rechain()
    assert check(crm).ok  # the chain alone cannot tell
    proven = read_checkpoint(path, load_public_key(key_file))
    problem = verify(crm.recorder, checkpoint=proven).problem
    assert problem is not None
    assert problem.kind == "rewritten"


def test_a_checkpoint_with_a_forged_signature_or_another_key_is_refused(
    crm: Crm, owner: Person, key_file: Path, tmp_path: Path
) -> None:
    history(crm, owner)
    path = checkpoint_of(crm, key_file, tmp_path)
    forged = path.read_bytes().replace(b'"events": ', b'"events": 1')
    path.write_bytes(forged)
    with pytest.raises(VerifyError, match="forged"):
        read_checkpoint(path, load_public_key(key_file))
    other = tmp_path / "other.pem"
    generate_key(other)
    (tmp_path / "other").mkdir()
    signed_by_other = checkpoint_of(crm, other, tmp_path / "other")
    with pytest.raises(VerifyError, match="another key"):
        read_checkpoint(signed_by_other, load_public_key(key_file))


# --- the command line --------------------------------------------------------------


def crm_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def cli_settings(store: Store, tmp_path: Path) -> dict[str, str]:
    """The `crm` command line's settings for the test's store."""
    env = store.env
    if store.kind == "sqlite":
        assert env["SQLITE_DBNAME"] == str(tmp_path / "events.sqlite")
        return {"CRM_DATA_DIR": str(tmp_path)}
    return {
        "CRM_DATABASE_URL": f"postgresql://{env['POSTGRES_USER']}@{env['POSTGRES_HOST']}:"
        f"{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}?schema={env['POSTGRES_SCHEMA']}"
    }


def test_crm_verify_on_the_command_line(
    store: Store, crm: Crm, owner: Person, database: Database, tmp_path: Path
) -> None:
    history(crm, owner)
    key = tmp_path / "keys" / "k.pem"
    env = {**cli_settings(store, tmp_path), "CRM_SIGNING_KEY_FILE": str(key)}
    assert crm_cli(env, "keygen", str(key)).returncode == 0
    old_store(database, None)
    adopted = crm_cli(env, "verify", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert f"chained {crm.position()} events written before the hash chain" in adopted.stdout
    checkpoint = str(tmp_path / "cp.json")
    ok = crm_cli(env, "verify", "--checkpoint", checkpoint)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"OK: {crm.position()} events up to position {crm.position()}")
    again = crm_cli(env, "verify", "--checkpoint", checkpoint)
    assert again.returncode == 1
    assert "never overwritten" in again.stderr
    assert crm_cli(env, "verify", "--against", checkpoint).returncode == 0

    position = database.position_of(b"Account 1")
    database.set_state(position, database.state(position) + b" ")
    tampered = crm_cli(env, "verify", "--against", checkpoint)
    assert tampered.returncode == 1
    lines = [line for line in tampered.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert f"TAMPERED (altered): position {position}:" in lines[0]


# --- walking ranges in parallel ------------------------------------------------------


@pytest.fixture
def in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any store, however small, is walked in two processes."""
    monkeypatch.setattr("replay.verify.PARALLEL_FROM", 1)


@pytest.mark.usefixtures("in_parallel")
def test_two_workers_find_what_one_finds(
    store: Store, crm: Crm, owner: Person, database: Database, key_file: Path, tmp_path: Path
) -> None:
    head = history(crm, owner)
    address = StoreAddress(crm.name, store.env)
    alone = check(crm)
    together = verify(crm.recorder, store=address, workers=2)
    assert together.ok, together.problem
    assert (together.events, together.position, together.head) == (
        alone.events,
        alone.position,
        alone.head,
    )
    path = checkpoint_of(crm, key_file, tmp_path)
    proven = read_checkpoint(path, load_public_key(key_file))
    assert verify(crm.recorder, checkpoint=proven, store=address, workers=2).ok

    late = database.position_of(b"Account 3")
    assert late > head // 2  # in the second worker's range
    database.set_state(late, database.state(late).replace(b"Account 3", b"Account 9"))
    problem = verify(crm.recorder, store=address, workers=2).problem
    assert problem is not None
    assert (problem.kind, problem.position) == ("altered", late)

    database.delete_events("> ?", late - 1)
    database.delete_links("> ?", late - 1)
    problem = verify(crm.recorder, checkpoint=proven, store=address, workers=2).problem
    assert problem is not None
    assert problem.kind == "truncated"
