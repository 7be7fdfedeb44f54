"""Replay for auditors on SQLite and PostgreSQL: a long record as of a moment, the board
as of a moment over a large history, and ``crm verify`` over all of it.

For each store (PostgreSQL: a throw-away database, dropped afterwards):

  record   one account with --record-events events (10,000), saved as in service (a
           snapshot every ``Crm.snapshot_every`` events); --loads loads of it as of a
           moment drawn among its events (``replay.records.record_as_of``: a binary
           search over its versions, then its latest snapshot before that version and
           the events after it), beside the baseline: the library's repository without
           snapshots replaying every event up to the same version (--replays loads).
  history  --events events of a realistic CRM history (1,000,000; ``bench/history.py``).
  board    the board as of the moment 60% of the history had been recorded
           (``replay.as_of``: the position by binary search, then the events up to it
           read once and the board built from them in SQL), in seconds, beside the
           baseline: eventsourcing reading and deserialising the whole history.
  verify   ``crm verify`` over the whole history, in one process and in --workers,
           beside the baseline: eventsourcing reading the same events (no hashing).

Targets (issue 4): verify >= 100,000 events/s.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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
from bench.readside import read_pass
from bench.records import time_loads, write_history
from commands.app import Crm, store_env
from domain.account import Account
from replay.as_of import position_as_of, read_models_as_of
from replay.as_of import recorded_at as recorded_at_position
from replay.records import record_as_of, recorded_at
from replay.verify import StoreAddress, verify

NAME = "replay"
SUMMARY = "records and the board as of a moment, and crm verify, beside the library's reads"
STORES = ("sqlite", "postgres")
TARGET_VERIFY_RATE = 100_000.0
#: Where in the history the board is taken as of.
BOARD_AT = 0.6


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the history (1,000,000)"
    )
    parser.add_argument(
        "--record-events", type=int, default=10_000, help="events of the long record (10,000)"
    )
    parser.add_argument("--loads", type=int, default=200, help="timed as-of loads (200)")
    parser.add_argument(
        "--replays", type=int, default=5, help="timed loads without snapshots (5: slow)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of the parallel verify (one per core)",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the history and the moments")
    add_store_options(parser, STORES)
    add_output_options(parser, NAME)


def bench_record(crm: Crm, args: argparse.Namespace, bar: Any, store: str) -> dict[str, Any]:
    task = bar.add_task(f"{store} · record", total=args.record_events, note="")
    record = write_history(
        crm, args.record_events, lambda n: bar.update(task, completed=n, note=f"{n:,}")
    )
    rng = random.Random(args.seed)
    head = crm.load(Account, record).version
    versions = [rng.randint(1, head) for _ in range(args.loads)]
    moments = [recorded_at(crm, record, v) for v in versions]
    pending = iter(moments)
    as_of = time_loads(lambda: record_as_of(crm, Account, record, moment=next(pending)), args.loads)
    replaying = Repository(event_store=crm.events)  # no snapshot store: every event
    late = iter(rng.choices(versions, k=args.replays))
    replay = time_loads(lambda: replaying.get(record, version=next(late)), args.replays)
    return {"as_of": as_of, "replay": replay, "version": head}


def bench_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-replay-")))
        if store == "postgres":
            url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
            env = store_env(url, "")
        else:
            env = store_env(None, str(tmp / "events.sqlite"))
        crm = Crm(env=env)
        stack.callback(crm.close)
        bar = stack.enter_context(progress())
        result: dict[str, Any] = {"record": bench_record(crm, args, bar, store)}

        task = bar.add_task(f"{store} · history", total=args.events, note="")
        History(crm, seed=args.seed).load(
            args.events, lambda n: bar.update(task, completed=n, note=f"{n:,}")
        )
        recorder = crm.recorder
        total = crm.position()
        baseline = read_pass("baseline", recorder, 10_000, crm.mapper.to_domain_event)
        read = read_pass("read", recorder, 10_000, None)

        moment = recorded_at_position(recorder, int(total * BOARD_AT))
        assert moment is not None
        started = time.perf_counter()
        position = position_as_of(recorder, moment)
        found = time.perf_counter() - started
        board = read_models_as_of(recorder, position, ["board"])
        board_seconds = time.perf_counter() - started
        deals = board.reader().execute("SELECT count(*) FROM board_deals").fetchone()
        board.close()

        single = verify(recorder)
        parallel = verify(recorder, store=StoreAddress(crm.name, env), workers=args.workers)
        for walk in (single, parallel):
            if not walk.ok:
                raise BenchError(f"{store}: the fresh history does not verify: {walk.problem}")
        result.update(
            events=total,
            baseline={"events": baseline.events, "seconds": baseline.seconds},
            read={"events": read.events, "seconds": read.seconds},
            board={
                "position": position,
                "events": board.events,
                "seconds": board_seconds,
                "find_position_seconds": found,
                "open_deals": deals[0] if deals else None,
            },
            verify={"events": single.events, "seconds": single.seconds},
            verify_parallel={
                "events": parallel.events,
                "seconds": parallel.seconds,
                "workers": args.workers,
            },
        )
        return result


def run(args: argparse.Namespace) -> int:
    if min(args.events, args.record_events, args.loads, args.replays, args.workers) < 1:
        raise BenchError("--events, --record-events, --loads, --replays, --workers must be >= 1")
    load_before = load_average()
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for store in args.stores:
        try:
            results[store] = bench_store(store, args)
        except ServiceUnavailableError as error:
            skipped[store] = str(error)
            err.print(f"[yellow]skipping {store}:[/yellow] {error}")
    busy = f"; load average {load_before[0]:.1f} before the run" if load_before else ""
    records = new_table(
        "Chronicle CRM · a record as of a moment",
        ("store · way", "loads", "p50 ms", "p99 ms", "max ms", "x replay"),
        f"One account with {args.record_events:,} events, as of moments drawn among them. "
        "replay (the baseline): the library's repository without snapshots up to the same "
        "version; as of: binary search + snapshot + the events after it" + busy + ".",
    )
    for store, result in results.items():
        replay: Latency = result["record"]["replay"]
        as_of: Latency = result["record"]["as_of"]
        records.add_row(
            f"{store} · replay", fmt_int(replay.count), fmt_ms(replay.p50), fmt_ms(replay.p99),
            fmt_ms(replay.max), "1.00x",
        )  # fmt: skip
        records.add_row(
            f"{store} · as of", fmt_int(as_of.count), fmt_ms(as_of.p50), fmt_ms(as_of.p99),
            fmt_ms(as_of.max), fmt_ratio(ratio(replay.p50, as_of.p50)),
        )  # fmt: skip
    out.print(records)
    history = new_table(
        "Chronicle CRM · the board as of a moment, and crm verify",
        ("store · pass", "events", "seconds", "events/s", "x baseline"),
        f"A realistic history of {args.events:,} events. baseline: eventsourcing's "
        "select_notifications + mapper.to_domain_event over all of it; read: "
        "select_notifications alone; board as of: position_as_of + the events up to the "
        f"moment {BOARD_AT:.0%} of the history was recorded, read once, the board built in "
        f"SQL; verify: every event hashed and checked against the chain, in one process and "
        f"in {args.workers}. Target: verify >= {TARGET_VERIFY_RATE:,.0f} events/s{busy}.",
    )
    for store, result in results.items():
        base = result["baseline"]["events"] / result["baseline"]["seconds"]
        rows = (
            ("baseline", result["baseline"], None),
            ("read", result["read"], None),
            ("board as of", result["board"], None),
            ("verify", result["verify"], TARGET_VERIFY_RATE),
            (f"verify, {args.workers} processes", result["verify_parallel"], TARGET_VERIFY_RATE),
        )
        for title, figures, target in rows:
            rate = figures["events"] / figures["seconds"] if figures["seconds"] else 0.0
            style = None if target is None else ("green" if rate >= target else "bold red")
            history.add_row(
                f"{store} · {title}", fmt_int(figures["events"]), f"{figures['seconds']:.2f}",
                fmt_rate(rate), fmt_ratio(ratio(rate, base)), style=style,
            )  # fmt: skip
    for store in skipped:
        history.add_row(f"{store} · skipped", *["-"] * 4, style="yellow")
    out.print(history)
    figures = {
        "options": {
            "events": args.events,
            "record_events": args.record_events,
            "loads": args.loads,
            "replays": args.replays,
            "workers": args.workers,
            "seed": args.seed,
        },
        "target_verify_events_per_second": TARGET_VERIFY_RATE,
        "load_average_before": load_before,
        "stores": {
            store: {
                **{k: v for k, v in result.items() if k != "record"},
                "record": {
                    "version": result["record"]["version"],
                    "as_of": result["record"]["as_of"].as_json(),
                    "replay": result["record"]["replay"].as_json(),
                },
            }
            for store, result in results.items()
        },
        "skipped": skipped,
    }
    path = write_json(NAME, figures, args.json)
    err.print(f"figures written to {path}", highlight=False)
    return 0
