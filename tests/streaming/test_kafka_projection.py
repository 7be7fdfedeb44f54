"""`crm project --source kafka`, run as the real command against a real broker (Tansu):
commands -> `crm relay` -> topic -> Kafka-fed read models, compared table by table
with the same read models fed from the store.

- One process holding every partition builds read models identical to the store-fed
  ones, also when killed with SIGKILL mid-batch and restarted, and when the topic
  holds messages twice (published again by hand, before and after a restart).
- Two processes in one group share the partitions: each holds exactly the events of
  the partitions it was assigned, once each, and together they hold every event.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from commands.context import Context
from commands.handlers import execute
from commands.users import InviteUser
from domain.roles import Authority, Role
from projections.files import ReadFiles
from projections.registry import PROJECTORS
from projections.store import ReadStore
from streaming.relay import KafkaTarget, ensure_topic
from tests.projections.compare import (
    POSITIONS,
    Content,
    Rows,
    content,
    differences,
    owners,
    rebuild,
)
from tests.projections.test_crash import open_crm, write_history
from tests.services import new_schema
from tests.streaming.test_relay import BIN, TIMEOUT, read_topic, relay, stored, watchdog

OFFSETS = "kafka_offsets"


@pytest.fixture(params=["sqlite", "postgres"])
def both_env(request: pytest.FixtureRequest, tmp_path: Path, broker: str) -> dict[str, str]:
    return make_env(request, tmp_path, broker, request.param)


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, broker: str) -> dict[str, str]:
    return make_env(request, tmp_path, broker, "sqlite")


def make_env(
    request: pytest.FixtureRequest, tmp_path: Path, broker: str, kind: str
) -> dict[str, str]:
    """The environment of `crm` on a new store, relaying to a new topic, projecting
    from it in a new group into ``data/read``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        CRM_DATA_DIR=str(tmp_path / "data"),
        CRM_KAFKA_BOOTSTRAP=broker,
        CRM_KAFKA_TOPIC=f"crm.events.{uuid.uuid4().hex[:12]}",
        GROUP=f"g-{uuid.uuid4().hex[:8]}",
    )
    if kind == "postgres":
        database_url: str = request.getfixturevalue("postgres_database")
        env["CRM_DATABASE_URL"] = f"{database_url}?schema={new_schema(database_url)}"
    return env


def project(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`crm project --source kafka --once`: read the topic to its end, then exit."""
    result = subprocess.run(
        ["crm", "project", "--source", "kafka", "--group", env["GROUP"], "--once", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def stores(read_dir: Path) -> Iterator[ReadStore]:
    files = ReadFiles(read_dir)
    for name, make in PROJECTORS.items():
        yield ReadStore(files.current(name), [make()], read_only=True)


def kafka_fed(env: dict[str, str]) -> Content:
    """Every table of the Kafka-fed read models, without the source's own offsets."""
    tables: Content = {}
    for store in stores(Path(env["CRM_DATA_DIR"]) / "read"):
        try:
            mine = content([store])
        finally:
            store.close()
        assert OFFSETS in mine
        del mine[OFFSETS]
        positions = tables.get(POSITIONS)
        tables.update(mine)
        if positions is not None:
            rows = sorted(positions.rows + mine[POSITIONS].rows, key=repr)
            tables[POSITIONS] = Rows(positions.columns, tuple(rows))
    return tables


def store_fed(env: dict[str, str]) -> Content:
    crm = open_crm(env)
    try:
        return rebuild(crm.recorder, PROJECTORS)
    finally:
        crm.close()


def assert_identical(env: dict[str, str]) -> None:
    problems = differences(kafka_fed(env), store_fed(env), owners(PROJECTORS))
    assert not problems, "Kafka-fed != store-fed:\n" + "\n".join(problems)


def invite(env: dict[str, str], email: str) -> None:
    crm = open_crm(env)
    try:
        command = InviteUser(email=email, name="Late", role=Role.SALES_REP)
        execute(crm, command, Context(Authority.system(), source="cli"))
    finally:
        crm.close()


def test_kafka_fed_read_models_are_identical_to_store_fed_ones(both_env: dict[str, str]) -> None:
    env = both_env
    crm = open_crm(env)
    try:
        write_history(crm, rounds=4)
    finally:
        crm.close()
    assert relay(env, "--batch-size", "7").returncode == 0
    first = project(env)
    events = stored(env)
    assert f"applied {len(events)} events" in first.stdout
    assert f"read models at position {events[-1][0]}" in first.stdout
    assert_identical(env)

    # Later events: the same group carries on from the offsets stored with the rows.
    invite(env, "late@example.com")
    assert relay(env).returncode == 0
    second = project(env)
    assert f"applied {len(stored(env)) - len(events)} events" in second.stdout
    assert_identical(env)


def follow(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`crm project --source kafka -v` following the topic (stopped by the test)."""
    return subprocess.Popen(
        ["crm", "project", "--source", "kafka", "--group", env["GROUP"], "-v", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def positions(env: dict[str, str]) -> dict[str, int]:
    return {row[0]: row[1] for row in kafka_fed(env)[POSITIONS].rows}


APPLYING = re.compile(r"applying positions \d+\.\.(\d+) to .*/(\w+)-\d+\.duckdb$")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_kafka_fed_projector_killed_mid_batch_and_restarted_is_identical(
    env: dict[str, str],
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=24)
    finally:
        crm.close()
    assert relay(env, "--batch-size", "9").returncode == 0
    small = {**env, "CRM_PROJECTION_BATCH_SIZE": "25"}
    rng = random.Random(20261204)
    mid_batch = 0
    for _ in range(3):
        process = follow(small, "--once")
        with watchdog(process):
            assert process.stderr is not None
            let_through = rng.randint(0, 2 * len(PROJECTORS))
            batch_end, read_model = None, ""
            for line in process.stderr:
                match = APPLYING.search(line.strip())
                if match is None:
                    continue
                if let_through == 0:
                    batch_end, read_model = int(match[1]), match[2]
                    break
                let_through -= 1
            process.send_signal(signal.SIGKILL)
            process.wait()
        if batch_end is not None and positions(env)[read_model] < batch_end:
            mid_batch += 1  # killed before that read model committed the batch
    assert mid_batch >= 1, "no kill landed in the middle of a batch"
    project(env)
    assert_identical(env)


def test_messages_published_twice_are_applied_once(env: dict[str, str], broker: str) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=3)
    finally:
        crm.close()
    assert relay(env, "--batch-size", "5").returncode == 0
    topic = env["CRM_KAFKA_TOPIC"]
    published = [m for ms in read_topic(broker, topic).values() for m in ms]
    rng = random.Random(7)
    producer = KafkaProducer(bootstrap_servers=[broker], acks="all")

    def again(records: list[Any], headers: bool) -> None:
        for record in records:
            kept = list(record.headers) if headers else []
            producer.send(topic, key=record.key, value=record.value, headers=kept)
        producer.flush()

    # Before the first run: some messages again, with and without the relay's headers.
    again(rng.sample(published, 10), headers=True)
    again(rng.sample(published, 5), headers=False)
    first = project(env)
    events = stored(env)
    assert f"applied {len(events)} events" in first.stdout
    assert "15 repeats dropped" in first.stderr
    assert_identical(env)

    # After a restart: everything again; the stored offsets and positions know it all.
    again(published, headers=True)
    second = project(env)
    assert "applied 0 events" in second.stdout
    # (A restart also reads the last batch again from its start, to count it.)
    repeats = re.search(r"([\d,]+) repeats dropped", second.stderr)
    assert repeats is not None
    assert int(repeats[1].replace(",", "")) >= len(published)
    producer.close()
    assert_identical(env)


class Lines:
    """The stderr lines of a process, collected by a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self.changed:
                self.lines.append(line.strip())
                self.changed.notify_all()

    def last(self, pattern: str) -> re.Match[str] | None:
        with self.changed:
            for line in reversed(self.lines):
                if (match := re.search(pattern, line)) is not None:
                    return match
        return None


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def assigned(lines: Lines) -> set[int]:
    match = lines.last(r"assigned partitions \[([\d, ]*)\]")
    return {int(n) for n in match[1].split(",") if n.strip()} if match else set()


def caught_up(lines: Lines) -> dict[int, int]:
    match = lines.last(r"caught up: offsets (.*)$")
    if match is None:
        return {}
    pairs = (pair.split(":") for pair in match[1].split(", ") if pair)
    return {int(p): int(o) for p, o in pairs}


def test_two_processes_in_one_group_each_hold_the_events_of_their_partitions(
    env: dict[str, str], broker: str, tmp_path: Path
) -> None:
    topic = env["CRM_KAFKA_TOPIC"]
    ensure_topic(KafkaTarget(broker, topic, partitions=3))
    mine = {name: {**env, "CRM_DATA_DIR": str(tmp_path / name)} for name in ("a", "b")}
    processes = {name: follow(e) for name, e in mine.items()}
    with watchdog(processes["a"]), watchdog(processes["b"]):
        lines = {name: Lines(process) for name, process in processes.items()}
        # Both joined and the group settled: the partitions split between them.
        wait_until(
            lambda: (
                assigned(lines["a"]).isdisjoint(assigned(lines["b"]))
                and assigned(lines["a"]) | assigned(lines["b"]) == {0, 1, 2}
                and all(assigned(lines[n]) for n in lines)
            ),
            "the two processes share the partitions",
        )
        crm = open_crm(env)
        try:
            write_history(crm, rounds=6)
        finally:
            crm.close()
        assert relay(env, "--batch-size", "4").returncode == 0
        on_topic = read_topic(broker, topic)
        ends = {partition: len(messages) for partition, messages in on_topic.items()}
        wait_until(
            lambda: all(
                caught_up(lines[n]) == {p: ends[p] for p in assigned(lines[n])} for n in lines
            ),
            "both processes read their partitions to the end",
        )
        owned = {name: assigned(lines[name]) for name in lines}
        # `crm sql` while it runs: from a snapshot the process writes between batches.
        counted = subprocess.run(
            ["crm", "sql", "SELECT count(*) AS n FROM audit_log", "--format", "csv"],
            env=mine["a"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert counted.returncode == 0, counted.stderr
        assert "snapshot" in counted.stderr
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            assert process.wait(timeout=TIMEOUT) == 0

    positions_on = {
        partition: {orjson.loads(m.value)["position"] for m in messages}
        for partition, messages in on_topic.items()
    }

    def audited(tables: Content) -> list[int]:
        audit = tables["audit_log"]
        column = audit.columns.index("position")
        return [row[column] for row in audit.rows]

    in_store = audited(store_fed(env))
    held: dict[str, list[int]] = {}
    for name, process_env in mine.items():
        held[name] = audited(kafka_fed(process_env))
        # Exactly the audit rows of the events of its own partitions, each once.
        on_mine = set().union(*(positions_on[p] for p in owned[name]))
        assert sorted(held[name]) == sorted(p for p in in_store if p in on_mine)
    assert counted.stdout.split() == ["n", str(len(held["a"]))]
    # Together: the store-fed audit log, every row in one process only.
    assert sorted(held["a"] + held["b"]) == sorted(in_store)
