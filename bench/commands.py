"""HTTP command throughput and latency of a real ``crm serve``, on SQLite and PostgreSQL.

For each store: ``crm init`` and ``crm serve`` run as their own processes on a fresh
store (PostgreSQL: a throw-away database, dropped afterwards); fixtures (sales reps with
their tokens, a pipeline, accounts, contacts, deals) are created over HTTP; then
``--clients`` concurrent keep-alive clients in this process send, for ``--duration``
seconds each after a warm-up:

  health   GET /health: HTTP + FastAPI + one store read, no auth (the baseline)
  me       GET /users/me: the baseline plus authenticating a bearer token
  mix      the command mix, each request as one of the reps: log a call 40%,
           move a deal to another stage 30%, create a contact (unique e-mail) 20%,
           register an account 10%
  register-account, create-contact, log-call, move-deal: one command type alone

Beside them, unless ``--no-floor``, the same scenarios against the framework floor
(``bench/floor.py``): FastAPI and uvicorn alone, with the mix's routes and command
models and nothing behind them. ``x floor`` reads each figure against it.

Moves pick a deal at random among ``--deals-per-client`` x clients, so concurrent
writers to one deal are rare; when they happen the loser gets 409, counted apart.
Any other non-2xx reply, or a request without a reply, is a failure: reported in red,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import math
import os
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.progress import Progress, TaskID

from bench.common import (
    BenchError,
    CpuMeter,
    RunningServer,
    ServiceUnavailableError,
    add_output_options,
    add_store_options,
    crm_server,
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
from bench.floor import floor_server
from bench.load import CLIENT_KINDS, ClientKind, Clients, Request, Run, Tally, drive, run_async
from bench.workloads import COMMANDS, MIX_WEIGHTS, CommandMix, Single, World, create_fixtures

NAME = "commands"
SUMMARY = "HTTP command throughput and p50/p99 latency on SQLite and PostgreSQL vs GET /health"

STORES = ("sqlite", "postgres")
BASELINE = "health"
SCENARIOS = ("health", "me", "mix", *COMMANDS)
DEFAULT_SCENARIOS = ("health", "mix")
#: Only a move can lose a race with another writer of the same deal.
EXPECTED_CONFLICTS = {"move-deal": (409,)}
TITLES = {"health": "GET /health", "me": "GET /users/me", "mix": "command mix"}
#: The framework floor's results, beside the stores'.
FLOOR = "floor"
#: What the floor can serve of the scenarios (it has no users).
FLOOR_SCENARIOS = frozenset(SCENARIOS) - {"me"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario (10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each scenario (1)"
    )
    add_store_options(parser, STORES)
    parser.add_argument(
        "--scenarios",
        type=csv_choices(SCENARIOS, everything="all"),
        default=list(DEFAULT_SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)}; or all (health,mix); "
        "health, the baseline, always runs",
    )
    parser.add_argument(
        "--client",
        choices=CLIENT_KINDS,
        default="raw",
        help="load generator: raw asyncio streams on uvloop (default, cheapest) or httpx",
    )
    parser.add_argument("--users", type=int, default=8, help="sales reps acting in turn (8)")
    parser.add_argument(
        "--deals-per-client", type=int, default=16, help="deals to move, per client (16)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server, e.g. CRM_PG_POOL_SIZE=20 (repeatable)",
    )
    parser.add_argument(
        "--commit",
        choices=COMMIT_MODES,
        default="both",
        help="group: the server commits concurrent commands together (the default of crm "
        "serve); single: one transaction per command (CRM_GROUP_COMMIT=false, the library's "
        "way: the baseline); both (default): each store measured both ways, in this run",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the framework floor: FastAPI alone with the same routes and "
        "bodies, nothing behind them (default: on)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mix (1)")
    add_output_options(parser, NAME)


def workload(scenario: str, world: World) -> Single | CommandMix:
    if scenario == "health":
        return Single(Request("health", "GET", "/health"))
    if scenario == "me":
        return Single(Request("me", "GET", "/users/me", token=world.fixtures.rep_tokens[0]))
    if scenario == "mix":
        return CommandMix(world, MIX_WEIGHTS)
    return CommandMix(world, {scenario: 1})


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Run
    cpu: dict[str, float | None]

    def tally(self) -> Tally:
        return self.run.total()

    def ok_rate(self, tally: Tally | None = None) -> float:
        return (tally or self.tally()).ok / self.run.elapsed if self.run.elapsed else math.nan

    def failures(self) -> int:
        return sum(
            tally.failures(EXPECTED_CONFLICTS.get(label, ()))
            for label, tally in self.run.by_label.items()
        )


async def measure_store(
    store: str, server: RunningServer, args: argparse.Namespace
) -> list[Scenario]:
    tag = uuid.uuid4().hex[:8]
    kind: ClientKind = args.client
    clients = Clients(kind, server.host, server.port, args.clients)
    scenarios: list[Scenario] = []
    try:
        with progress() as bar:
            fixtures = await create_fixtures(
                clients,
                server.owner_token,
                tag,
                users=args.users,
                accounts=max(8, args.clients * 2),
                contacts=max(8, args.clients * 2),
                deals=args.clients * args.deals_per_client,
                bar=bar,
            )
            world = World(fixtures, tag, args.seed)
            for name in args.scenarios:
                task = bar.add_task(f"{store} · {name}", total=args.warmup + args.duration, note="")
                load = workload(name, world)
                if args.warmup > 0:
                    warm = ticker(bar, task, 0.0, "warm-up")
                    await drive(clients, load, args.clients, args.warmup, tick=warm)
                server.check_alive()
                meter = CpuMeter(server.pid)
                measured = ticker(bar, task, args.warmup)
                run = await drive(clients, load, args.clients, args.duration, tick=measured)
                cpu = meter.read()
                bar.remove_task(task)
                server.check_alive()
                scenarios.append(Scenario(name, run, cpu))
    finally:
        await clients.aclose()
    return scenarios


def ticker(
    bar: Progress, task: TaskID, offset: float, note: str | None = None
) -> Callable[[float, int], None]:
    def tick(elapsed: float, replies: int) -> None:
        bar.update(task, completed=offset + elapsed, note=note or f"{replies:,} replies")

    return tick


#: --commit: which ways of committing to measure; "single" is the baseline of "group".
COMMIT_MODES = ("both", "group", "single")
#: The server setting of each way.
COMMIT_ENV = {"single": "false", "group": "true"}


def commit_modes(choice: str) -> list[str]:
    return ["single", "group"] if choice == "both" else [choice]


def bench_store(store: str, args: argparse.Namespace, mode: str) -> list[Scenario]:
    extra = dict(_key_value(item) for item in args.server_env)
    extra["CRM_GROUP_COMMIT"] = COMMIT_ENV[mode]
    with ExitStack() as stack:
        database_url = None
        if store == "postgres":
            database_url = stack.enter_context(throwaway_database(postgres_url(args.postgres_url)))
        server = stack.enter_context(crm_server(database_url, extra))
        return run_async(lambda: measure_store(store, server, args))


def bench_floor(args: argparse.Namespace) -> list[Scenario]:
    with floor_server() as server:
        return run_async(lambda: measure_store(FLOOR, server, args))


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise BenchError(f"--server-env takes KEY=VALUE, not {item!r}")
    return key, value


# ---------------------------------------------------------------- reporting


COLUMNS = (
    "scenario",
    "requests",
    "2xx/s",
    "x health",
    "x single",
    "x floor",
    "p50 ms",
    "p99 ms",
    "max ms",
    "409",
    "failed",
    "CPU srv",
    "CPU gen",
    "CPU box",
)


def single_rate(results: dict[str, list[Scenario]], store: str, name: str) -> float:
    """The 2xx/s of scenario ``name`` on the same store with one commit per command (the
    baseline of group commit), for a group-commit row; NaN otherwise."""
    kind, _, mode = store.partition(" ")
    if mode != "group":
        return math.nan
    for scenario in results.get(f"{kind} single", []):
        if scenario.name == name:
            return scenario.ok_rate()
    return math.nan


def floor_rate(results: dict[str, list[Scenario]], store: str, name: str) -> float:
    """The 2xx/s of scenario ``name`` on the framework floor, for a store's row; NaN
    otherwise."""
    if store == FLOOR:
        return math.nan
    for scenario in results.get(FLOOR, []):
        if scenario.name == name:
            return scenario.ok_rate()
    return math.nan


def baseline_rate(scenarios: Sequence[Scenario]) -> float:
    for scenario in scenarios:
        if scenario.name == BASELINE:
            return scenario.ok_rate()
    return math.nan


def row(
    title: str,
    tally: Tally,
    rate: float,
    base: float,
    failed: int,
    cpu: dict[str, float | None] | None,
    single: float = math.nan,
    floor: float = math.nan,
) -> list[str]:
    latency = tally.latency()
    return [
        title,
        fmt_int(tally.replies + sum(tally.exceptions.values())),
        fmt_rate(rate),
        fmt_ratio(ratio(rate, base)),
        "" if math.isnan(single) else fmt_ratio(ratio(rate, single)),
        "" if math.isnan(floor) else fmt_ratio(ratio(rate, floor)),
        fmt_ms(latency.p50),
        fmt_ms(latency.p99),
        fmt_ms(latency.max),
        fmt_int(tally.count(409)),
        f"[bold red]{fmt_int(failed)}[/bold red]" if failed else "0",
        fmt_pct(cpu["server_pct"]) if cpu else "",
        fmt_pct(cpu["client_pct"]) if cpu else "",
        fmt_pct(cpu["machine_pct"]) if cpu else "",
    ]


@dataclass
class Outcome:
    """Per store: its scenarios, or why it was skipped, or the error that stopped it."""

    results: dict[str, list[Scenario]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def failed(self) -> bool:
        return bool(self.broken) or any(
            scenario.failures() for scenarios in self.results.values() for scenario in scenarios
        )


def print_report(outcome: Outcome, args: argparse.Namespace) -> None:
    results = outcome.results
    load = args.load_before
    busy = f", load average {load[0]:.1f} before the run" if load else ""
    caption = (
        f"{args.clients} clients ({args.client} client, keep-alive), {args.duration:g} s per "
        f"scenario after {args.warmup:g} s warm-up, {os.cpu_count()} CPUs{busy}. "
        "x health = 2xx/s / GET /health 2xx/s on the same server in this run; x single = "
        "2xx/s / the same scenario's 2xx/s with one commit per command, in this run; x floor "
        "= 2xx/s / the same scenario's 2xx/s on the framework floor (FastAPI alone with the "
        "same routes and bodies, nothing behind them), in this run; indented rows "
        "are the parts of the mix. CPU srv / gen = % of one core used by the server process / "
        "this load generator; CPU box = % of all cores busy (incl. the database)."
    )
    table = new_table("Chronicle CRM · HTTP commands", COLUMNS, caption)
    for store, scenarios in results.items():
        base = baseline_rate(scenarios)
        for scenario in scenarios:
            total = scenario.tally()
            title = f"{store} · {TITLES.get(scenario.name, scenario.name)}"
            failed = scenario.failures()
            single = single_rate(results, store, scenario.name)
            floor = floor_rate(results, store, scenario.name)
            rate = scenario.ok_rate()
            cells = row(title, total, rate, base, failed, scenario.cpu, single, floor)
            table.add_row(*cells, style="bold red" if failed else None)
            if scenario.name == "mix":
                for label in COMMANDS:
                    tally = scenario.run.by_label.get(label)
                    if tally is not None:
                        rate = scenario.ok_rate(tally)
                        failed = tally.failures(EXPECTED_CONFLICTS.get(label, ()))
                        cells = row(f"    {label}", tally, rate, base, failed, None)
                        table.add_row(*cells, style="red" if failed else "dim")
        table.add_section()
    blank = ["-"] * (len(COLUMNS) - 1)
    for store in outcome.skipped:
        table.add_row(f"{store} · skipped (not reachable)", *blank, style="yellow")
    for store in outcome.broken:
        table.add_row(f"{store} · ERROR (see below)", *blank, style="bold red")
    out.print(table)
    for store, reason in outcome.broken.items():
        err.print(f"[bold red]ERROR in {store}:[/bold red] {escape(reason)}")
    for store, scenarios in results.items():
        for scenario in scenarios:
            if scenario.failures():
                report_failures(store, scenario)


def report_failures(store: str, scenario: Scenario) -> None:
    err.print(f"[bold red]FAILURES in {store} · {scenario.name}:[/bold red]")
    for label, tally in scenario.run.by_label.items():
        expected = EXPECTED_CONFLICTS.get(label, ())
        bad = {
            str(status): n
            for status, n in sorted(tally.statuses.items())
            if not 200 <= status < 300 and status not in expected
        }
        bad.update(tally.exceptions)
        if bad:
            counts = ", ".join(f"{what} x{n}" for what, n in bad.items())
            err.print(f"  [red]{label}: {escape(counts)}[/red]")
            for sample in tally.samples[:3]:
                err.print(f"    {escape(sample)}", highlight=False)


def figures(outcome: Outcome, args: argparse.Namespace) -> dict[str, Any]:
    def tally_json(
        tally: Tally, elapsed: float, base: float, expected: Sequence[int]
    ) -> dict[str, Any]:
        rate = tally.ok / elapsed if elapsed else math.nan
        relative = ratio(rate, base)
        return {
            "requests": tally.replies + sum(tally.exceptions.values()),
            "ok": tally.ok,
            "ok_per_s": round(rate, 1),
            "ratio_to_health": None if math.isnan(relative) else round(relative, 4),
            "latency": tally.latency().as_json(),
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "conflicts_409": tally.count(409),
            "failures": tally.failures(expected),
            "exceptions": dict(tally.exceptions),
            "failure_samples": tally.samples[:5],
        }

    stores: dict[str, Any] = {}
    for store, scenarios in outcome.results.items():
        base = baseline_rate(scenarios)
        stores[store] = {
            scenario.name: {
                **tally_json(scenario.tally(), scenario.run.elapsed, base, (409,)),
                "failures": scenario.failures(),
                "elapsed_s": round(scenario.run.elapsed, 3),
                "cpu": scenario.cpu,
                "by_command": {
                    label: tally_json(
                        tally, scenario.run.elapsed, base, EXPECTED_CONFLICTS.get(label, ())
                    )
                    for label, tally in sorted(scenario.run.by_label.items())
                },
            }
            for scenario in scenarios
        }
    return {
        "options": {
            "clients": args.clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "client": args.client,
            "users": args.users,
            "deals": args.clients * args.deals_per_client,
            "mix_weights": MIX_WEIGHTS,
            "scenarios": args.scenarios,
            "server_env": args.server_env,
            "commit": args.commit,
            "postgres_url": redact(postgres_url(args.postgres_url)),
        },
        "baseline": "GET /health on the same server, same run",
        "floor": "FastAPI alone with the same routes and bodies, nothing behind them; "
        "same run, same client (stores.floor)",
        "load_average_before": args.load_before,
        "cpu_units": "server_pct, client_pct: % of one core; machine_pct: % of all cores",
        "stores": stores,
        "skipped": outcome.skipped,
        "errors": outcome.broken,
    }


# ---------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.users < 1:
        raise BenchError("--clients and --users must be >= 1, --duration > 0, --warmup >= 0")
    if args.deals_per_client < 1:
        raise BenchError("--deals-per-client must be >= 1")
    if BASELINE not in args.scenarios:
        # Every figure is read against the baseline of the same run: never go without it.
        args.scenarios = [BASELINE, *args.scenarios]
    args.load_before = load_average()
    outcome = Outcome()
    for store, mode in [(s, m) for s in args.stores for m in commit_modes(args.commit)]:
        err.print(f"[bold]{store}[/bold] ({mode} commit): starting crm serve …", highlight=False)
        try:
            outcome.results[f"{store} {mode}"] = bench_store(store, args, mode)
        except ServiceUnavailableError as error:
            outcome.skipped[f"{store} {mode}"] = str(error)
            err.print(f"[yellow]skipping {store}:[/yellow] {escape(str(error))}")
        except BenchError as error:
            # One store's broken server must not cost the other store's figures.
            outcome.broken[f"{store} {mode}"] = str(error)
            err.print(f"[bold red]{store} failed[/bold red] (details after the table)")
    if not outcome.results and not outcome.broken:
        raise BenchError("no store could be measured")
    if args.floor:
        err.print("[bold]framework floor[/bold]: starting uvicorn …", highlight=False)
        floor_args = argparse.Namespace(**vars(args))
        floor_args.scenarios = [s for s in args.scenarios if s in FLOOR_SCENARIOS]
        try:
            outcome.results[FLOOR] = bench_floor(floor_args)
        except BenchError as error:
            outcome.broken[FLOOR] = str(error)
            err.print("[bold red]the floor failed[/bold red] (details after the table)")
    print_report(outcome, args)
    path = write_json(NAME, figures(outcome, args), args.json)
    err.print(f"figures written to {path}", highlight=False)
    return 1 if outcome.failed() else 0
