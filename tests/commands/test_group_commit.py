"""Group commit: concurrent saves share a transaction and keep every guarantee of a
save of their own — on SQLite and PostgreSQL.

The committer is driven against the real store. To make groups form on purpose, the
first transaction is held until the other saves have queued behind it (``Gate``);
without that the tests would pass whether or not saves were ever grouped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    OperationalError,
    StoredEvent,
)

from commands.accounts import RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.context import Context, Receipt
from commands.errors import CommandError, ConflictError
from commands.group_commit import GroupCommitter
from commands.handlers import execute
from domain.errors import DomainError
from tests.conftest import Person, Store

THREADS = 16


def event(originator: UUID, version: int, label: str) -> StoredEvent:
    return StoredEvent(originator, version, "tests:Thing.Happened", json.dumps(label).encode())


class Gate:
    """Wraps a real recorder: the first ``insert_events`` waits until ``queued`` saves
    are waiting behind it, so that they form one group."""

    def __init__(self, recorder: ApplicationRecorder, committer: GroupCommitter) -> None:
        self.recorder = recorder
        self.committer = committer
        self.calls: list[int] = []
        self.queued = 0

    def insert_events(self, events: list[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not self.calls:
            deadline = time.monotonic() + 10
            while len(self.committer._queue) < self.queued and time.monotonic() < deadline:
                time.sleep(0.005)
        self.calls.append(len(events))
        return self.recorder.insert_events(events, **kwargs)


def gated(crm: Crm, queued: int) -> tuple[GroupCommitter, Gate]:
    committer = GroupCommitter(crm.recorder)
    gate = Gate(crm.recorder, committer)
    gate.queued = queued
    committer.recorder = gate  # type: ignore[assignment]
    return committer, gate


def insert_all(committer: GroupCommitter, saves: list[list[StoredEvent]]) -> list[Any]:
    """Every save from its own thread at once; each one's positions or exception."""

    def one(save: list[StoredEvent]) -> Any:
        try:
            return list(committer.insert(save))
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(saves)) as pool:
        first = pool.submit(one, saves[0])
        time.sleep(0.05)  # the first save leads and is held at the gate
        rest = [pool.submit(one, save) for save in saves[1:]]
        return [first.result(), *(f.result() for f in rest)]


def stored(crm: Crm) -> list[tuple[int, UUID, int, bytes]]:
    return [
        (n.id, UUID(str(n.originator_id)), n.originator_version, bytes(n.state))
        for n in crm.recorder.select_notifications(1, 100_000)
    ]


def test_concurrent_saves_commit_together_each_with_its_own_positions(crm: Crm) -> None:
    committer, gate = gated(crm, queued=THREADS - 1)
    saves = [
        [event(uuid4(), 1, f"save {i} event {j}") for j in range(1 + i % 3)] for i in range(THREADS)
    ]
    results = insert_all(committer, saves)
    # The leader alone, then everybody who queued behind it in one transaction.
    assert gate.calls == [len(saves[0]), sum(len(s) for s in saves[1:])]
    assert committer.stats.largest == THREADS - 1
    rows = stored(crm)
    by_position = {
        position: (originator, version, state) for position, originator, version, state in rows
    }
    assert len(rows) == sum(len(s) for s in saves)
    for save, positions in zip(saves, results, strict=True):
        assert len(positions) == len(save)
        assert positions == sorted(positions)
        # One save's events are contiguous: no other save's event lies between them.
        assert positions == list(range(positions[0], positions[0] + len(save)))
        for e, position in zip(save, positions, strict=True):
            assert by_position[position] == (e.originator_id, e.originator_version, e.state)


def test_a_conflict_fails_only_its_own_save_and_the_rest_of_the_group_commits(crm: Crm) -> None:
    taken = uuid4()
    committer = GroupCommitter(crm.recorder)
    committer.insert([event(taken, 1, "already there")])
    committer, _ = gated(crm, queued=5)
    contested = uuid4()
    saves = [
        [event(uuid4(), 1, "leader")],
        [event(uuid4(), 1, "a"), event(uuid4(), 1, "b")],
        [event(taken, 1, "conflicts with the store"), event(uuid4(), 1, "c")],
        [event(contested, 1, "first to the record")],
        [event(contested, 1, "second to the record"), event(uuid4(), 1, "d")],
        [event(uuid4(), 1, "e")],
    ]
    results = insert_all(committer, saves)
    assert isinstance(results[2], IntegrityError)
    assert isinstance(results[4], IntegrityError)
    committed = [0, 1, 3, 5]
    for i in committed:
        assert isinstance(results[i], list)
        assert len(results[i]) == len(saves[i])
    states = Counter(state for _, _, _, state in stored(crm))
    for i, save in enumerate(saves):
        for e in save:
            assert states[e.state] == (1 if i in committed else 0), (i, e.state)
    assert states[json.dumps("already there").encode()] == 1
    # The group failed on the conflicts and was retried save by save.
    assert committer.stats.retried_alone == 5


def test_a_store_failure_fails_every_save_of_the_group_and_writes_nothing(crm: Crm) -> None:
    committer, gate = gated(crm, queued=3)
    real = gate.recorder

    class Down:
        def insert_events(self, events: list[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
            if len(events) > 1:  # the group's transaction, not the leader's
                raise OperationalError("the store went away")
            return real.insert_events(events, **kwargs)

    gate.recorder = Down()  # type: ignore[assignment]
    before = len(stored(crm))
    saves = [[event(uuid4(), 1, f"s{i}")] for i in range(4)]
    results = insert_all(committer, saves)
    assert isinstance(results[0], list)
    assert all(isinstance(r, OperationalError) for r in results[1:])
    assert len(stored(crm)) == before + 1


# -- commands -----------------------------------------------------------------------------


def test_concurrent_commands_conflicting_invalid_and_retried_keep_every_guarantee(
    crm: Crm, owner: Person
) -> None:
    """Many commands at once through ``execute``: renames of shared accounts with an
    expected version (one winner each), invalid ones, retries of the same idempotency
    key. Every acknowledged command's events are stored exactly once; a refused
    command left nothing."""
    accounts = [execute(crm, RegisterAccount(name=f"Acme {i}"), owner.ctx) for i in range(4)]
    start = crm.position()
    barrier = threading.Barrier(THREADS * 4)

    def attempt(n: int) -> tuple[str, Receipt | Exception]:
        kind = ("rename", "invalid", "retry", "new")[n % 4]
        account = accounts[n // 4 % len(accounts)]
        ctx = Context(actor=owner.user.authority, source="test")
        if kind == "rename":
            ctx = Context(actor=owner.user.authority, source="test", expected_version=1)
            command: Any = UpdateAccount(account_id=account.id, name=f"Renamed {n}")
        elif kind == "invalid":
            command = UpdateAccount(account_id=uuid4(), name="No such account")
        elif kind == "retry":
            key = f"retry-{n // 4 % 8}"
            ctx = Context(actor=owner.user.authority, source="test", idempotency_key=key)
            command = RegisterAccount(name=f"Retried {n // 4 % 8}")
        else:
            command = RegisterAccount(name=f"New {n}")
        barrier.wait(timeout=30)
        try:
            return kind, execute(crm, command, ctx)
        except (DomainError, CommandError) as error:
            return kind, error

    with ThreadPoolExecutor(max_workers=THREADS * 4) as pool:
        outcomes = list(pool.map(attempt, range(THREADS * 4)))

    notifications = crm.recorder.select_notifications(start + 1, 100_000)
    by_request: Counter[str] = Counter()
    for n in notifications:
        by_request[json.loads(n.state)["_meta"]["request_id"]] += 1
    renamed = [r for kind, r in outcomes if kind == "rename" and isinstance(r, Receipt)]
    conflicts = [r for kind, r in outcomes if kind == "rename" and isinstance(r, ConflictError)]
    assert len(renamed) == len(accounts)  # one winner per account
    assert len(conflicts) == THREADS - len(accounts)
    assert all(not isinstance(r, Receipt) for kind, r in outcomes if kind == "invalid")
    retried = [r for kind, r in outcomes if kind == "retry"]
    assert all(isinstance(r, Receipt) for r in retried)
    firsts = {r.id for r in retried if isinstance(r, Receipt) and not r.replayed}
    assert len(firsts) == 8  # one account per key, whoever of its retries won
    assert len({r.id for r in retried if isinstance(r, Receipt)}) == 8
    new = [r for kind, r in outcomes if kind == "new"]
    assert all(isinstance(r, Receipt) for r in new)
    # Exactly the winners wrote: a rename 1 event, a first retry 2 (account and
    # idempotency record), a new account 1; nothing else is in the store.
    assert sum(by_request.values()) == len(renamed) + 2 * 8 + len(new)
    positions = sorted(n.id for n in notifications)
    assert len(positions) == len(set(positions))
    for receipt in (*renamed, *new):
        assert isinstance(receipt, Receipt)
        assert start < receipt.position <= crm.position()
    assert crm.committer.stats.largest > 1  # commands really did share transactions


# -- a crash during group commit --------------------------------------------------------------

WRITER = """
import os, sys, threading
from commands.accounts import RegisterAccount
from commands.app import Crm
from commands.context import Context
from commands.handlers import execute
from commands.users import InviteUser
from domain.roles import Authority, Role
from domain.user import User

crm = Crm(env=dict(arg.split("=", 1) for arg in sys.argv[1:]))
system = Context(actor=Authority.system(), source="test")
invited = execute(crm, InviteUser(email="rep@example.com", name="Rep", role=Role.OWNER), system)
actor = crm.load(User, invited.id).authority

def write(lane):
    for n in range(100_000):
        ctx = Context(actor=actor, source="test")
        receipt = execute(crm, RegisterAccount(name=f"lane {lane} account {n}"), ctx)
        # Reported only once the command is acknowledged, in one write (a pipe takes it
        # whole, or not at all when the process is killed).
        os.write(1, f"{ctx.request_id} {receipt.position}\\n".encode())

lanes = [threading.Thread(target=write, args=(lane,)) for lane in range(8)]
for lane in lanes:
    lane.start()
for lane in lanes:
    lane.join()
"""


def test_a_process_killed_during_group_commit_loses_no_acknowledged_command(
    store: Store, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    args = [f"{k}={v}" for k, v in store.env.items()]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    acknowledged: list[tuple[str, int]] = []
    assert writer.stdout is not None
    try:
        for line in writer.stdout:
            request, at = line.split()
            acknowledged.append((request, int(at)))
            if len(acknowledged) >= 300:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        rest = writer.communicate()[0]
    # Only whole lines: whatever follows the last newline was not reported in full.
    for line in rest.split("\n")[:-1]:
        request, at = line.split()
        acknowledged.append((request, int(at)))
    crm = store.open()
    try:
        requests = {
            json.loads(n.state)["_meta"]["request_id"]: n.id
            for n in crm.recorder.select_notifications(1, 1_000_000)
        }
    finally:
        crm.close()
    assert len(acknowledged) >= 300
    for request_id, position in acknowledged:
        assert requests.get(request_id) == position, request_id
