"""`crm relay`, run as the real command against a real Kafka-protocol broker (Tansu),
on SQLite and on PostgreSQL: every event reaches the topic in order per aggregate,
a second run publishes nothing twice, a relay killed mid-stream and restarted leaves
no event out, and neither does a broker stopped and restarted while the relay publishes
(that broker keeps its topics in an S3 bucket of moto's server, so that they outlive
its process: Tansu's in-memory storage would start empty).

The topic is read by a plain kafka-python consumer in this process (no group, every
partition assigned), another process than the relay's; every message is checked
against the JSON Schema.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from commands.context import Context
from commands.handlers import execute
from commands.users import InviteUser
from domain.roles import Authority, Role
from streaming.envelope import schema
from streaming.relay import Tail, resume_position
from tests.projections.test_crash import open_crm, write_history
from tests.services import free_port, kafka_broker, new_schema, s3_object_store

BIN = Path(sys.executable).parent
TIMEOUT = 120


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path, broker: str) -> dict[str, str]:
    """The environment of `crm` on a new store, relaying to a new topic."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        CRM_DATA_DIR=str(tmp_path / "data"),
        CRM_KAFKA_BOOTSTRAP=broker,
        CRM_KAFKA_TOPIC=f"crm.events.{uuid.uuid4().hex[:12]}",
    )
    if request.param == "postgres":
        database_url: str = request.getfixturevalue("postgres_database")
        env["CRM_DATABASE_URL"] = f"{database_url}?schema={new_schema(database_url)}"
    return env


@contextmanager
def watchdog(process: subprocess.Popen[str]) -> Iterator[None]:
    """Kill ``process`` if the test still waits on it after TIMEOUT (a line it waits
    for that never comes would block forever); kill it at the end in any case."""
    timer = threading.Timer(TIMEOUT, process.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()


def relay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["crm", "relay", "--once", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def stored(env: dict[str, str]) -> list[tuple[int, str, int]]:
    """(position, aggregate id, version) of every stored event."""
    crm = open_crm(env)
    try:
        head = crm.position()
        return [
            (n.id, str(n.originator_id), n.originator_version)
            for n in crm.recorder.select_notifications(start=1, limit=head + 1)
        ]
    finally:
        crm.close()


def consumer(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False, group_id=None)


def read_topic(bootstrap: str, topic: str) -> dict[int, list[Any]]:
    """Every message of every partition, in offset order, by partition."""
    reader = consumer(bootstrap)
    try:
        partitions = [TopicPartition(topic, n) for n in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_beginning()
        ends = reader.end_offsets(partitions)
        messages: dict[int, list[Any]] = {tp.partition: [] for tp in partitions}
        quiet = 0
        deadline = time.monotonic() + TIMEOUT
        while quiet < 3 and time.monotonic() < deadline:
            batch = reader.poll(timeout_ms=300)
            for tp, records in batch.items():
                messages[tp.partition].extend(records)
            caught_up = all(reader.position(tp) >= ends[tp] for tp in partitions)
            quiet = quiet + 1 if not batch and caught_up else 0
        return messages
    finally:
        reader.close()


def envelopes(messages: dict[int, list[Any]]) -> dict[int, list[dict[str, Any]]]:
    """The messages as envelopes, each checked against the schema and its key."""
    check = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    result: dict[int, list[dict[str, Any]]] = {}
    for partition, records in messages.items():
        result[partition] = []
        for record in records:
            envelope = orjson.loads(record.value)
            check.validate(envelope)
            assert record.key == envelope["aggregate_id"].encode()
            result[partition].append(envelope)
    return result


def assert_every_event_in_order(
    events: list[tuple[int, str, int]], published: dict[int, list[dict[str, Any]]]
) -> None:
    """Every stored event is on the topic; an aggregate's events all on one partition
    and, skipping repeats of what a partition already delivered, in order of version
    (and so in global order there)."""
    versions: dict[str, list[int]] = defaultdict(list)
    where: dict[str, set[int]] = defaultdict(set)
    positions: set[int] = set()
    for partition, messages in published.items():
        seen: set[tuple[str, int]] = set()
        last = 0
        for envelope in messages:
            aggregate, version = envelope["aggregate_id"], envelope["version"]
            where[aggregate].add(partition)
            positions.add(envelope["position"])
            if (aggregate, version) in seen:
                continue
            seen.add((aggregate, version))
            versions[aggregate].append(version)
            assert envelope["position"] > last, "a partition went back in global order"
            last = envelope["position"]
    assert positions == {position for position, _, _ in events}
    expected: dict[str, list[int]] = defaultdict(list)
    for _, aggregate, version in events:
        expected[aggregate.replace("-", "")].append(version)
    assert {a.replace("-", ""): v for a, v in versions.items()} == expected
    assert all(len(partitions) == 1 for partitions in where.values())


def count(published: dict[int, list[dict[str, Any]]]) -> int:
    return sum(len(messages) for messages in published.values())


def test_every_event_reaches_the_topic_once_in_order_and_a_second_run_adds_nothing(
    env: dict[str, str], broker: str
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=4)
    finally:
        crm.close()
    events = stored(env)

    first = relay(env)
    assert first.returncode == 0, first.stderr
    assert f"published {len(events)} events" in first.stdout
    published = envelopes(read_topic(broker, env["CRM_KAFKA_TOPIC"]))
    assert len(published) == 3  # the relay created the topic with CRM_KAFKA_PARTITIONS
    assert count(published) == len(events)  # exactly once on a clean run
    assert_every_event_in_order(events, published)

    again = relay(env)
    assert again.returncode == 0, again.stderr
    assert "published 0 events" in again.stdout
    assert count(envelopes(read_topic(broker, env["CRM_KAFKA_TOPIC"]))) == len(events)

    crm = open_crm(env)
    try:
        late = InviteUser(email="late@example.com", name="Late", role=Role.SALES_REP)
        execute(crm, late, Context(Authority.system(), source="cli"))
    finally:
        crm.close()
    grown = stored(env)
    assert len(grown) > len(events)
    later = relay(env)
    assert later.returncode == 0, later.stderr
    assert f"published {len(grown) - len(events)} events" in later.stdout
    published = envelopes(read_topic(broker, env["CRM_KAFKA_TOPIC"]))
    assert count(published) == len(grown)
    assert_every_event_in_order(grown, published)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_relay_killed_mid_stream_and_restarted_leaves_no_event_out(
    env: dict[str, str], broker: str
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=12)
    finally:
        crm.close()
    events = stored(env)
    topic = env["CRM_KAFKA_TOPIC"]
    rng = random.Random(5)
    interrupted = 0
    for _ in range(3):
        process = subprocess.Popen(
            ["crm", "relay", "--once", "--batch-size", "2", "--verbose"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        acknowledged = 0
        with watchdog(process):
            assert process.stderr is not None
            wanted = rng.randint(1, 6)
            for line in process.stderr:
                if "acknowledged positions" in line:
                    acknowledged = int(line.rsplit("..", 1)[1])
                    wanted -= 1
                    if wanted == 0:
                        break
            process.send_signal(signal.SIGKILL)
            process.wait()
        if 0 < acknowledged < len(events):
            interrupted += 1
    assert interrupted >= 1, "no kill landed while the relay still had events to publish"

    last = relay(env)
    assert last.returncode == 0, last.stderr
    published = envelopes(read_topic(broker, topic))
    assert_every_event_in_order(events, published)
    # At least once: a batch cut short is sent again whole, nothing more.
    assert count(published) <= len(events) + interrupted * 2


def test_a_relay_started_while_the_broker_is_down_reports_its_lag_and_delivers_later(
    env: dict[str, str],
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=2)
    finally:
        crm.close()
    events = stored(env)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        ["crm", "relay", "--once"],
        env={**env, "CRM_KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with watchdog(process):
        assert process.stderr is not None
        warning = next(line for line in process.stderr if "crm.relay" in line)
        assert f"broker {bootstrap} unavailable" in warning
        assert f"{len(events)} events behind; retrying in" in warning
        with kafka_broker(port):
            stdout, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0
            assert f"published {len(events)} events" in stdout
            published = envelopes(read_topic(bootstrap, env["CRM_KAFKA_TOPIC"]))
    assert count(published) == len(events)
    assert_every_event_in_order(events, published)


# The broker's outage is the subject, not the store (the other tests run both): SQLite
# only, as the relay takes up to ~15 s to give up on a broker that vanished mid-batch.
@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_broker_stopped_and_restarted_while_relaying_leaves_no_event_out(
    env: dict[str, str],
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=6)
    finally:
        crm.close()
    events = stored(env)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with s3_object_store() as objects, ExitStack() as first_broker:
        first_broker.enter_context(kafka_broker(port, objects.storage, objects.env))
        process = subprocess.Popen(
            ["crm", "relay", "--once", "--batch-size", "2", "--verbose"],
            env={**env, "CRM_KAFKA_BOOTSTRAP": bootstrap},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with watchdog(process):
            assert process.stderr is not None
            lines = iter(process.stderr)
            acknowledged = list(itertools.islice(acknowledgements(lines), 3))
            first_broker.close()  # the broker is killed while the relay publishes
            outage = next(line for line in lines if "unavailable" in line)
            with kafka_broker(port, objects.storage, objects.env):  # the same storage
                stdout, _ = process.communicate(timeout=TIMEOUT)
                published = envelopes(read_topic(bootstrap, env["CRM_KAFKA_TOPIC"]))
    assert acknowledged[-1] < len(events), "the relay had finished before the broker stopped"
    assert f"broker {bootstrap} unavailable" in outage
    assert process.returncode == 0
    assert "the topic holds every event up to position" in stdout
    assert_every_event_in_order(events, published)
    # At least once: only the batch the outage cut short may be on the topic twice.
    assert count(published) <= len(events) + 2


def acknowledgements(lines: Iterator[str]) -> Iterator[int]:
    """The last position of each batch the relay logs as acknowledged."""
    for line in lines:
        if "acknowledged positions" in line:
            yield int(line.rsplit("..", 1)[1])


def test_a_following_relay_publishes_new_events_and_stops_on_sigterm(
    env: dict[str, str], broker: str
) -> None:
    crm = open_crm(env)
    try:
        write_history(crm, rounds=1)
    finally:
        crm.close()
    events = stored(env)
    process = subprocess.Popen(
        ["crm", "relay", "--verbose"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with watchdog(process):
        assert process.stderr is not None
        caught_up = f"..{events[-1][0]}"
        next(line for line in process.stderr if line.rstrip().endswith(caught_up))
        crm = open_crm(env)
        try:
            late = InviteUser(email="late@example.com", name="Late", role=Role.SALES_REP)
            execute(crm, late, Context(Authority.system(), source="cli"))
        finally:
            crm.close()
        grown = stored(env)
        followed = f"..{grown[-1][0]}"
        next(line for line in process.stderr if line.rstrip().endswith(followed))
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0
    assert f"published {len(grown)} events" in stdout
    published = envelopes(read_topic(broker, env["CRM_KAFKA_TOPIC"]))
    assert count(published) == len(grown)
    assert_every_event_in_order(grown, published)


def test_bad_settings_fail_in_one_line(env: dict[str, str]) -> None:
    result = relay({**env, "CRM_KAFKA_BOOTSTRAP": " , "})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: CRM_KAFKA_BOOTSTRAP names no server"]
    result = relay(env, "--batch-size", "0")
    assert result.returncode == 2  # typer's usage error, before anything is opened
    assert "Traceback" not in result.stderr


# resume_position: what the ends of the partitions say


def tails(first: int, count: int, *positions: int) -> list[Tail]:
    return [Tail(position, first, count) for position in positions]


def test_an_empty_topic_starts_from_the_beginning() -> None:
    assert resume_position([]) == 0


def test_a_complete_last_batch_resumes_after_it() -> None:
    old = tails(1, 3, 1, 2, 3)
    assert resume_position([*old, *tails(4, 3, 4, 6), *tails(4, 3, 5)]) == 6


def test_a_last_batch_cut_short_is_sent_again_from_its_start() -> None:
    assert resume_position([*tails(1, 3, 1, 2, 3), *tails(4, 3, 4, 6)]) == 3


def test_a_batch_sent_again_longer_counts_by_its_longest_page() -> None:
    # First try: positions 4..6 (3 events) all on the topic; the retry read 4..8
    # (5 events, the store had grown) and got 4..7 out before the crash.
    retried = [*tails(4, 3, 4, 5, 6), *tails(4, 5, 4, 5, 6, 7)]
    assert resume_position(retried) == 3
    assert resume_position([*retried, *tails(4, 5, 8)]) == 8
