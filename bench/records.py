"""Loading one record with a long history, with and without snapshots, on SQLite and
PostgreSQL.

For each store, in a fresh store (PostgreSQL: a throw-away database, dropped afterwards):
one account gets --events events (renames, written by the domain method and saved in
batches, as a busy account gathers them over the years), with a snapshot every
``Crm.snapshot_every`` events as ``crm serve`` takes them. Then --loads loads of it:

  replay     the record from all its events (eventsourcing's repository without a
             snapshot store): the baseline
  snapshot   ``Crm.load``: the latest snapshot plus the events after it
  +99        the record as of its previous version: a snapshot and the 99 events
             after it, the most a load replays

Target (issue 7): p99 <= 20 ms for a record with 100,000 events.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Repository

from bench.common import (
    BenchError,
    Latency,
    ServiceUnavailableError,
    add_output_options,
    add_store_options,
    err,
    fmt_int,
    fmt_ms,
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
from commands.app import SNAPSHOT_EVERY, Crm, store_env
from commands.context import Context
from domain.account import Account
from domain.roles import Authority

NAME = "records"
SUMMARY = "load a record with a long history: snapshots against replaying every event"
STORES = ("sqlite", "postgres")
TARGET_P99_MS = 20.0
#: Events saved per transaction while the history is written: a snapshot is taken at
#: the end of a save that passed a multiple of SNAPSHOT_EVERY, as after commands in
#: service (a few events each), so one every SNAPSHOT_EVERY events.
BATCH = SNAPSHOT_EVERY


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events of the record")
    parser.add_argument("--loads", type=int, default=200, help="timed loads per way (200)")
    parser.add_argument(
        "--replays", type=int, default=3, help="timed loads without snapshots (3: slow)"
    )
    add_store_options(parser, STORES)
    add_output_options(parser, NAME)


def write_history(crm: Crm, events: int, tick: Any) -> UUID:
    """One account with ``events`` events, saved ``BATCH`` at a time through the
    application (so snapshots are taken as in service)."""
    meta = Context(actor=Authority.system(), source="bench").meta
    account = Account(
        name="Acme 1",
        website=None,
        industry=None,
        country=None,
        address=None,
        owner_id=uuid4(),
        parent_id=None,
    )
    written = 1
    while written < events:
        for _ in range(min(BATCH, events - written)):
            written += 1
            account.change_details(
                name=f"Acme {written}", website=None, industry=None, country=None, address=None
            )
        crm.save_with(meta, account)
        tick(written)
    if written == 1:
        crm.save_with(meta, account)
    return account.id


def time_loads(load: Any, times: int) -> Latency:
    samples: list[float] = []
    for _ in range(times):
        started = time.perf_counter()
        load()
        samples.append(time.perf_counter() - started)
    return Latency.of(samples)


def bench_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-rec-")))
        if store == "postgres":
            url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
            env = store_env(url, "")
        else:
            env = store_env(None, str(tmp / "events.sqlite"))
        crm = Crm(env=env)
        stack.callback(crm.close)
        with progress() as bar:
            task = bar.add_task(f"{store} · write", total=args.events, note="")
            record = write_history(
                crm, args.events, lambda n: bar.update(task, completed=n, note=f"{n:,}")
            )
        replaying = Repository(event_store=crm.events)  # no snapshot store: every event
        head = crm.load(Account, record)
        assert head.version == args.events, head.version
        replay = time_loads(lambda: replaying.get(record), args.replays)
        snapshot = time_loads(lambda: crm.load(Account, record), args.loads)
        # The worst case: the latest snapshot at or below the version asked for is
        # SNAPSHOT_EVERY - 1 events behind it (the record as of its previous version).
        worst = time_loads(lambda: crm.load(Account, record, version=head.version - 1), args.loads)
        snapshots = len(list(crm.snapshots.get(record))) if crm.snapshots else 0
        return {"replay": replay, "snapshot": snapshot, "worst": worst, "snapshots": snapshots}


def run(args: argparse.Namespace) -> int:
    if args.events < 1 or args.loads < 1 or args.replays < 1:
        raise BenchError("--events, --loads and --replays must be >= 1")
    load_before = load_average()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for store in args.stores:
        try:
            results[store] = bench_store(store, args)
        except ServiceUnavailableError as error:
            skipped[store] = str(error)
            err.print(f"[yellow]skipping {store}:[/yellow] {error}")
    busy = f", load average {load_before[0]:.1f} before the run" if load_before else ""
    caption = (
        f"One account with {args.events:,} events, a snapshot every {SNAPSHOT_EVERY} events. "
        f"replay: all events, no snapshot (the baseline; {args.replays} loads); snapshot: "
        f"Crm.load ({args.loads} loads); snapshot + {SNAPSHOT_EVERY - 1}: the record as of "
        f"its previous version, {SNAPSHOT_EVERY - 1} events after its latest snapshot (the "
        "worst case). x replay = replay p50 / this p50. "
        f"Target p99 <= {TARGET_P99_MS:g} ms{busy}."
    )
    table = new_table(
        "Chronicle CRM · loading a long record",
        ("store · way", "loads", "p50 ms", "p99 ms", "max ms", "x replay", "snapshots"),
        caption,
    )
    for store, result in results.items():
        replay = result["replay"]
        table.add_row(
            f"{store} · replay", fmt_int(replay.count), fmt_ms(replay.p50),
            fmt_ms(replay.p99), fmt_ms(replay.max), "1.00x", "",
        )  # fmt: skip
        for way, title in (("snapshot", "snapshot"), ("worst", f"snapshot + {SNAPSHOT_EVERY - 1}")):
            timed = result[way]
            table.add_row(
                f"{store} · {title}", fmt_int(timed.count), fmt_ms(timed.p50),
                fmt_ms(timed.p99), fmt_ms(timed.max),
                fmt_ratio(ratio(replay.p50, timed.p50)), fmt_int(result["snapshots"]),
                style="green" if timed.p99 <= TARGET_P99_MS else "bold red",
            )  # fmt: skip
    for store in skipped:
        table.add_row(f"{store} · skipped", *["-"] * 6, style="yellow")
    out.print(table)
    figures = {
        "options": {"events": args.events, "loads": args.loads, "replays": args.replays},
        "snapshot_every": SNAPSHOT_EVERY,
        "target_p99_ms": TARGET_P99_MS,
        "load_average_before": load_before,
        "stores": {
            store: {
                "replay": result["replay"].as_json(),
                "snapshot": result["snapshot"].as_json(),
                "snapshot_plus_99": result["worst"].as_json(),
                "snapshots": result["snapshots"],
            }
            for store, result in results.items()
        },
        "skipped": skipped,
    }
    path = write_json(NAME, figures, args.json)
    err.print(f"figures written to {path}", highlight=False)
    return 0
