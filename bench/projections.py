"""Read models: rebuild speed against eventsourcing's own read + deserialise, live lag,
board query latency — on SQLite and PostgreSQL.

For each store, in a fresh store (PostgreSQL: a throw-away database, dropped afterwards;
nothing is cached between runs):

  load      --events events of a realistic CRM history (bench/history.py): users,
            pipelines, accounts in a hierarchy, contacts, deals moving through stages
            and closing, interactions of every kind with corrections and retractions,
            tasks; written by the domain methods, many commands per transaction
  baseline  read every event in pages (select_notifications) and deserialise it with
            the library's mapper (mapper.to_domain_event): what eventsourcing alone
            manages. Beside it: reading alone, and reading + our decode
            (projections/events.py), to tell the parts apart
  bulk      what `crm rebuild` does: the store's events read once (projections/bulk.py),
            every registered read model derived from them in SQL into a new DuckDB
            file, then swapped in: the figure held against the target
  rebuild   every registered read model built from position 0 through the handlers
            (the live path) into DuckDB files
            (ReadModels + runner.catch_up), end to end, its time split by the runner's
            own timers (read, decode, each read model's apply)
  alone     each read model rebuilt alone over the first --alone-events events
  profile   when the rebuild is below the target (or --profile always): cProfile of a
            rebuild of the first --profile-events events, time put in buckets (read,
            decode, each projector's handlers, Arrow + DuckDB flush, transactions)
  lag       the read models running in process, woken after each commit (as
            `crm serve` wires them), while --lag-threads threads drive --lag-rate
            commands/s through commands.handlers.execute for --lag-seconds: per
            command, the time from its commit until every read model has applied it
  board     board query latency with --board-deals open deals in one pipeline (needs
            projections/board.py)

Targets (issue 3): rebuild >= 100,000 events/s end to end; lag p99 <= 200 ms at
1,000 commands/s; board query p99 <= 20 ms with 100,000 open deals.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from bench import boardbench
from bench.common import (
    BenchError,
    Latency,
    ServiceUnavailableError,
    add_output_options,
    add_store_options,
    csv_choices,
    err,
    fmt_int,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
    load_average,
    new_table,
    out,
    postgres_url,
    progress,
    ratio,
    redact,
    throwaway_database,
    write_json,
)
from bench.history import History, LoadStats
from bench.readside import (
    Lag,
    Pass,
    Profile,
    bulk_rebuild,
    live_lag,
    make_lanes,
    profile_rebuild,
    read_pass,
    rebuild,
)
from commands.app import Crm, store_env
from projections.host import ReadModels

NAME = "projections"
SUMMARY = (
    "read-model rebuild events/s vs eventsourcing's read + deserialise, live lag, "
    "board query p99, on SQLite and PostgreSQL"
)
STORES = ("sqlite", "postgres")
SECTIONS = ("bulk", "rebuild", "alone", "profile", "lag", "board")
TARGET_RATE = 100_000.0
TARGET_LAG_P99_MS = 200.0
BASELINE = "baseline"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the history (1,000,000)"
    )
    add_store_options(parser, STORES)
    parser.add_argument(
        "--sections",
        type=csv_choices(SECTIONS, everything="all"),
        default=list(SECTIONS),
        help=f"comma-separated, of: {', '.join(SECTIONS)}; or all (all); "
        "load and baseline always run",
    )
    parser.add_argument(
        "--page", type=int, default=10_000, help="events per page/batch, as the runner (10,000)"
    )
    parser.add_argument(
        "--alone-events",
        type=int,
        default=200_000,
        help="events of the rebuild of each read model alone (200,000; 0: all); the "
        "runner's timers already split the full rebuild by read model",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile a rebuild: when below the target (auto), always or never",
    )
    parser.add_argument(
        "--profile-events", type=int, default=200_000, help="events to profile (200,000)"
    )
    parser.add_argument(
        "--lag-rate",
        type=_rates,
        default=[1000.0],
        help="commands/s; comma-separated for one run per rate, e.g. 250,1000 (1000)",
    )
    parser.add_argument("--lag-seconds", type=float, default=20.0, help="seconds per rate (20)")
    parser.add_argument("--lag-threads", type=int, default=4, help="driving threads (4)")
    parser.add_argument(
        "--board-deals", type=int, default=100_000, help="open deals on the board (100,000)"
    )
    parser.add_argument("--board-queries", type=int, default=300, help="board queries timed (300)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the history (1)")
    add_output_options(parser, NAME)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates are positive numbers of commands/s")
    return rates


# ---------------------------------------------------------------- one store


@dataclass
class StoreResult:
    store: str
    load: LoadStats
    passes: list[Pass] = field(default_factory=list)
    profile: Profile | None = None
    lags: list[Lag] = field(default_factory=list)
    board: boardbench.Board | None = None
    board_note: str | None = None
    seconds: float = 0.0

    def rate_of(self, name: str) -> float:
        return next((p.rate for p in self.passes if p.name == name), math.nan)


def registered() -> dict[str, Callable[[], Any]]:
    from projections.registry import PROJECTORS

    return dict(PROJECTORS)


def bench_store(store: str, args: argparse.Namespace) -> StoreResult:
    started = time.perf_counter()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-proj-")))
        if store == "postgres":
            url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
            env = store_env(url, "", pool_size=args.lag_threads + 4)
        else:
            env = store_env(None, str(tmp / "events.sqlite"))
        crm = Crm(env=env)
        stack.callback(crm.close)
        bar = stack.enter_context(progress())

        def ticker(description: str, total: float) -> Callable[[int], None]:
            task = bar.add_task(f"{store} · {description}", total=total, note="")

            def tick(done: int) -> None:
                bar.update(task, completed=done, note=f"{done:,}")

            return tick

        history = History(crm, seed=args.seed)
        stats = history.load(args.events, ticker("load", args.events))
        result = StoreResult(store, stats)
        total = stats.events
        reader = crm.recorder
        page = args.page
        result.passes += [
            read_pass("read", reader, page, None, ticker("read", total)),
            read_pass(BASELINE, reader, page, crm.mapper.to_domain_event, ticker("base", total)),
            read_pass("decode", reader, page, _decode(), ticker("decode", total)),
        ]
        factories = registered()
        everything = tmp / "read"
        bulk = tmp / "bulk"
        needs_models = "lag" in args.sections or "board" in args.sections
        if "bulk" in args.sections or (needs_models and "rebuild" not in args.sections):
            result.passes.append(
                bulk_rebuild("bulk", reader, bulk, factories, page, ticker("bulk", total))
            )
            everything = bulk  # the read models the lag and board sections run on
        if "rebuild" in args.sections:
            result.passes.append(
                rebuild("all", reader, tmp / "read", factories, page, ticker("rebuild", total))
            )
        if "alone" in args.sections:
            stop = min(args.alone_events or total, total)
            for name, factory in factories.items():
                directory, tick = tmp / name, ticker(name, stop)
                alone = rebuild(
                    f"alone:{name}", reader, directory, {name: factory}, page, tick, stop
                )
                result.passes.append(alone)
                shutil.rmtree(tmp / name)  # a 1M-event history makes gigabytes of them
        below = result.rate_of("bulk" if "bulk" in args.sections else "all") < TARGET_RATE
        if "profile" in args.sections and (
            args.profile == "always" or (args.profile == "auto" and below)
        ):
            stop = min(args.profile_events, total)
            err.print(f"{store}: profiling a rebuild of {stop:,} events …", highlight=False)
            result.profile = profile_rebuild(reader, tmp / "profiled", factories, page, stop)
            shutil.rmtree(tmp / "profiled")
        if "lag" in args.sections:
            lanes = make_lanes(history, args.lag_threads)
            tag = uuid.uuid4().hex[:8]
            top = max(args.lag_rate)
            # The write path alone, at the highest rate offered: what the drivers manage
            # with no read model in the process (the lag is measured at what they do).
            result.lags.append(
                live_lag(
                    crm,
                    None,
                    lanes,
                    top,
                    args.lag_seconds,
                    f"{tag}w{top:.0f}",
                    tick=seconds_ticker(ticker(f"write path at {top:,.0f}/s", args.lag_seconds)),
                )
            )
            for rate in args.lag_rate:
                reads = ReadModels(reader, everything, factories, batch_size=page)
                lag = live_lag(
                    crm,
                    reads,
                    lanes,
                    rate,
                    args.lag_seconds,
                    f"{tag}{rate:.0f}",
                    tick=seconds_ticker(ticker(f"lag at {rate:,.0f}/s", args.lag_seconds)),
                )
                result.lags.append(lag)
        if "board" in args.sections:
            if boardbench.available():
                result.board = boardbench.measure(
                    crm, history, everything, factories, page, args.board_deals, args.board_queries
                )
            else:
                result.board_note = boardbench.MISSING
    result.seconds = time.perf_counter() - started
    return result


def seconds_ticker(tick: Callable[[int], None]) -> Callable[[float, int], None]:
    def tick_seconds(elapsed: float, commands: int) -> None:
        tick(int(elapsed))

    return tick_seconds


def _decode() -> Callable[[Any], object]:
    from projections.events import decode

    return decode


# ---------------------------------------------------------------- reporting


TITLES = {
    "read": "read pages (select_notifications)",
    BASELINE: "baseline: read + mapper.to_domain_event",
    "decode": "read + projections.events.decode",
    "bulk": "crm rebuild: every read model, read once + SQL",
    "all": "rebuild through the handlers (the live path)",
}


def machine_note(args: argparse.Namespace) -> str:
    load = args.load_before
    busy = f", load average {load[0]:.1f} before the run" if load else ""
    return (
        f"{os.cpu_count()} CPUs, shared with other work{busy}: absolute figures move with "
        "the machine's load; ratios to the baseline of the same run move less."
    )


def print_store(result: StoreResult, args: argparse.Namespace) -> None:
    store, load = result.store, result.load
    table = new_table(
        f"Chronicle CRM · {store} · history written",
        (
            "events",
            "commands",
            "transactions",
            "seconds",
            "events/s",
            "accounts",
            "contacts",
            "open deals",
        ),
        "Domain methods as the handlers call them; each command's own metadata; "
        "many commands per transaction.",
    )
    table.add_row(
        fmt_int(load.events),
        fmt_int(load.commands),
        fmt_int(load.batches),
        f"{load.seconds:.1f}",
        fmt_rate(load.rate),
        fmt_int(load.counts.get("accounts", 0)),
        fmt_int(load.counts.get("contacts", 0)),
        fmt_int(load.counts.get("open_deals", 0)),
    )
    out.print(table)

    base = result.rate_of(BASELINE)
    alone = min(args.alone_events or load.events, load.events)
    table = new_table(
        f"Chronicle CRM · {store} · rebuild vs eventsourcing's read + deserialise",
        ("pass", "events", "seconds", "events/s", "x baseline", "of target", "CPU s", "DuckDB MB"),
        f"x baseline = events/s / (select_notifications + mapper.to_domain_event) in this "
        f"run; of target = events/s / {TARGET_RATE:,.0f}. 'alone' rows (first "
        f"{alone:,} events) read and decode them too. CPU s: this process's CPU time "
        "(DuckDB's threads included; below seconds when other work shares the cores). "
        f"Pages of {args.page:,}. "
        f"{machine_note(args)}",
    )
    for p in result.passes:
        title = TITLES.get(p.name, f"  {p.name.partition(':')[2]} alone")
        rebuilt = p.name in ("all", "bulk") or p.name.startswith("alone:")
        short = rebuilt and p.rate < TARGET_RATE
        table.add_row(
            title,
            fmt_int(p.events),
            f"{p.seconds:.1f}",
            fmt_rate(p.rate),
            fmt_ratio(ratio(p.rate, base)),
            fmt_pct(p.rate / TARGET_RATE * 100) if rebuilt else "",
            f"{p.cpu_seconds:.1f}",
            f"{p.megabytes:,.0f}" if p.megabytes is not None else "",
            style="bold" if p.name in ("bulk", BASELINE) else ("yellow" if short else None),
        )
    out.print(table)
    print_parts(store, result)
    if result.profile is not None:
        print_profile(store, result.profile)
    if result.lags:
        print_lags(store, result.lags, args)
    if result.board is not None:
        boardbench.print_board(store, result.board, machine_note(args))
    elif result.board_note is not None:
        err.print(f"[yellow]{store} · board: {result.board_note}[/yellow]")
    err.print(f"{store}: finished in {result.seconds / 60:.1f} min", highlight=False)


def print_parts(store: str, result: StoreResult) -> None:
    everything = next((p for p in result.passes if p.name == "all"), None)
    if everything is None or not everything.parts:
        return
    table = new_table(
        f"Chronicle CRM · {store} · where the rebuild's time went (the runner's own timers)",
        ("part", "seconds", "share", "events/s of this part alone"),
        "read: select_notifications; decode: projections/events.py; applying: the stores "
        "applying their batches side by side (wall time), then each store's own time in "
        "it (handlers, Arrow + DuckDB flush, commit; they overlap); other: opening, "
        "closing (checkpoint).",
    )
    parts = everything.parts
    top = {k: v for k, v in parts.items() if not k.startswith("apply:")}
    for part, seconds in [*top.items(), *((k, v) for k, v in parts.items() if k not in top)]:
        title = f"  {part.partition(':')[2]}" if part.startswith("apply:") else part
        table.add_row(
            title,
            f"{seconds:.1f}",
            fmt_pct(seconds / everything.seconds * 100),
            fmt_rate(everything.events / seconds if seconds else math.nan),
            style="dim" if part.startswith("apply:") else None,
        )
    other = everything.seconds - sum(top.values())
    table.add_row("other", f"{other:.1f}", fmt_pct(other / everything.seconds * 100), "")
    out.print(table)


def print_profile(store: str, profile: Profile) -> None:
    table = new_table(
        f"Chronicle CRM · {store} · where a rebuild's time goes (cProfile)",
        ("part", "seconds", "share"),
        f"{profile.events:,} events, {profile.seconds:.1f} s under the profiler "
        f"({profile.events / profile.seconds:,.0f} events/s; cProfile slows Python code "
        "more than C code). Inclusive times: a part counts what it calls.",
    )
    for name, seconds in profile.buckets:
        share = seconds / profile.seconds * 100 if profile.seconds else None
        table.add_row(
            name, f"{seconds:.2f}", fmt_pct(share), style="dim" if "of which" in name else None
        )
    out.print(table)
    table = new_table(
        f"Chronicle CRM · {store} · hottest functions (own time)", ("function", "seconds", "calls")
    )
    for where, own, calls in profile.hottest:
        table.add_row(escape(where), f"{own:.2f}", fmt_int(calls))
    out.print(table)


def print_lags(store: str, lags: list[Lag], args: argparse.Namespace) -> None:
    table = new_table(
        f"Chronicle CRM · {store} · live lag of the read models",
        (
            "offered/s",
            "done/s",
            "commands",
            "failed",
            "lag p50 ms",
            "p90",
            "p99",
            "max",
            "execute p50 ms",
            "p99",
        ),
        f"{args.lag_threads} threads call commands.handlers.execute on a schedule of the "
        f"offered rate for {args.lag_seconds:g} s (done/s: what they managed); every read "
        "model in this process, its runner woken after each commit, as in `crm serve`. "
        "The first row: the same drivers with no read model in the process (the write path "
        "alone). Lag: from a command's commit until every read model has applied it "
        f"(target p99 <= {TARGET_LAG_P99_MS:.0f} ms at 1,000/s). {machine_note(args)}",
    )
    for lag in lags:
        behind, took = Latency.of(lag.lags), Latency.of(lag.latencies)
        failed = sum(lag.failures.values())
        offered = fmt_rate(lag.offered_rate)
        table.add_row(
            offered if lag.read_models else f"{offered} (no read models)",
            fmt_rate(lag.achieved_rate),
            fmt_int(lag.commands),
            f"[bold red]{failed}[/bold red]" if failed else "0",
            fmt_ms(behind.p50),
            fmt_ms(behind.p90),
            fmt_ms(behind.p99),
            fmt_ms(behind.max),
            fmt_ms(took.p50),
            fmt_ms(took.p99),
        )
    out.print(table)
    for lag in lags:
        if lag.not_visible:
            err.print(f"[bold red]{store}: {lag.not_visible} commands never became visible[/]")
        if lag.runner_error:
            err.print(f"[bold red]{store}: the runner stopped: {escape(lag.runner_error)}[/]")
        for sample in lag.failure_samples:
            err.print(f"  [red]{escape(sample)}[/red]")


def figures(results: dict[str, StoreResult], args: argparse.Namespace) -> dict[str, Any]:
    stores: dict[str, Any] = {}
    for store, result in results.items():
        base = result.rate_of(BASELINE)
        entry: dict[str, Any] = {
            "seconds": round(result.seconds, 1),
            "load": {
                "events": result.load.events,
                "commands": result.load.commands,
                "transactions": result.load.batches,
                "seconds": round(result.load.seconds, 2),
                "events_per_s": round(result.load.rate),
                "world": result.load.counts,
                "by_command": result.load.by_command,
            },
            "passes": {
                p.name: {
                    "events": p.events,
                    "seconds": round(p.seconds, 3),
                    "cpu_seconds": round(p.cpu_seconds, 3),
                    "events_per_s": round(p.rate),
                    "ratio_to_baseline": round(ratio(p.rate, base), 3),
                    "duckdb_mb": None if p.megabytes is None else round(p.megabytes, 1),
                    "parts_s": {k: round(v, 3) for k, v in p.parts.items()},
                }
                for p in result.passes
            },
        }
        if result.profile is not None:
            entry["profile"] = {
                "events": result.profile.events,
                "seconds": round(result.profile.seconds, 2),
                "buckets_s": {k: round(v, 3) for k, v in result.profile.buckets},
                "hottest": [
                    {"function": f, "own_s": round(s, 3), "calls": c}
                    for f, s, c in result.profile.hottest
                ],
            }
        entry["lag"] = [
            {
                "offered_per_s": lag.offered_rate,
                "read_models": lag.read_models,
                "done_per_s": round(lag.achieved_rate, 1),
                "seconds": round(lag.seconds, 2),
                "threads": lag.threads,
                "commands": lag.commands,
                "by_command": dict(lag.by_command),
                "failures": dict(lag.failures),
                "failure_samples": lag.failure_samples,
                "not_visible": lag.not_visible,
                "runner_error": lag.runner_error,
                "lag": Latency.of(lag.lags).as_json(),
                "execute": Latency.of(lag.latencies).as_json(),
            }
            for lag in result.lags
        ]
        if result.board is not None:
            entry["board"] = asdict(result.board)
        elif result.board_note is not None:
            entry["board"] = {"skipped": result.board_note}
        stores[store] = entry
    return {
        "options": {
            "events": args.events,
            "alone_events": args.alone_events,
            "page": args.page,
            "sections": args.sections,
            "seed": args.seed,
            "lag": {
                "rate": args.lag_rate,
                "seconds": args.lag_seconds,
                "threads": args.lag_threads,
            },
            "board": {"deals": args.board_deals, "queries": args.board_queries},
            "postgres_url": redact(postgres_url(args.postgres_url)),
        },
        "baseline": "select_notifications + mapper.to_domain_event over every event, same run",
        "targets": {
            "rebuild_events_per_s": TARGET_RATE,
            "lag_p99_ms": TARGET_LAG_P99_MS,
            "board_p99_ms": boardbench.TARGET_P99_MS,
        },
        "load_average_before": args.load_before,
        "load_average_after": load_average(),
        "stores": stores,
    }


# ---------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    if args.events < 1000:
        raise BenchError("--events must be at least 1,000")
    if args.page < 1 or args.lag_threads < 1 or args.lag_seconds <= 0:
        raise BenchError("--page and --lag-threads must be >= 1, --lag-seconds > 0")
    args.load_before = load_average()
    results: dict[str, StoreResult] = {}
    broken: dict[str, str] = {}
    for store in args.stores:
        err.print(f"[bold]{store}[/bold]: {args.events:,} events …", highlight=False)
        try:
            results[store] = bench_store(store, args)
        except ServiceUnavailableError as error:
            broken[store] = str(error)
            err.print(f"[yellow]skipping {store}:[/yellow] {escape(str(error))}")
            continue
        print_store(results[store], args)
    if not results:
        raise BenchError("no store could be measured")
    document = figures(results, args)
    document["skipped"] = broken
    path = write_json(NAME, document, args.json)
    err.print(f"figures written to {path}", highlight=False)
    failed = any(
        lag.failures or lag.not_visible or lag.runner_error
        for result in results.values()
        for lag in result.lags
    )
    return 1 if failed else 0
