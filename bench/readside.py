"""The measurements behind ``bench projections``: reading passes over the whole log (the
baseline), rebuilds of the read models, a profile of a rebuild with the time put in
buckets, and the lag of live read models behind commands.

Every pass reads the log in pages of the runner's batch size, as the runner does.
"""

from __future__ import annotations

import cProfile
import heapq
import itertools
import pstats
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification

from bench.history import History
from commands.app import Crm
from commands.contacts import CreateContact
from commands.context import Context, Payload
from commands.deals import MoveDeal
from commands.handlers import execute
from commands.interactions import LogCall, LogEmail, LogNote
from commands.tasks import CompleteTask, CreateTask
from domain.interaction import CallOutcome
from domain.roles import Authority
from domain.task import RecordKind
from domain.values import Direction
from projections.bulk import stage
from projections.files import ReadFiles
from projections.host import ReadModels
from projections.projector import Projector
from projections.runner import Runner
from replay.rebuild import rebuild as rebuild_model

Factories = Mapping[str, Callable[[], Projector]]
Tick = Callable[[int], None]


@dataclass(frozen=True)
class Pass:
    """One timed pass over the log."""

    name: str
    events: int
    seconds: float
    #: CPU time of this process meanwhile (all its threads, DuckDB's included).
    cpu_seconds: float
    megabytes: float | None = None
    #: For a rebuild, from the runner's timers: read, decode, applying (wall time) and
    #: apply:<read model> (each store's own time; stores apply side by side).
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------- reading passes


def read_pass(
    name: str,
    recorder: ApplicationRecorder,
    page: int,
    per_event: Callable[[Notification], object] | None,
    tick: Tick | None = None,
) -> Pass:
    """Read every notification in pages; apply ``per_event`` to each (None: read only)."""
    position, count = 0, 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        notifications = recorder.select_notifications(
            start=position, limit=page, inclusive_of_start=False
        )
        if not notifications:
            break
        if per_event is not None:
            list(map(per_event, notifications))
        count += len(notifications)
        position = notifications[-1].id
        if tick is not None:
            tick(count)
    return Pass(name, count, time.perf_counter() - started, time.process_time() - cpu)


# ---------------------------------------------------------------- rebuilds


def megabytes(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.glob("*.duckdb*")) / 1e6


def rebuild(
    name: str,
    recorder: ApplicationRecorder,
    directory: Path,
    factories: Factories,
    page: int,
    tick: Tick | None = None,
    stop: int | None = None,
) -> Pass:
    """Build ``factories``' read models from position 0 (up to ``stop``, default all)
    into DuckDB files in ``directory``: open, catch up, close (checkpoint) — all timed."""
    started, cpu = time.perf_counter(), time.process_time()
    reads = ReadModels(recorder, directory, factories, batch_size=page)
    try:
        applied = reads.runner.catch_up(
            stop=stop, progress=(lambda at, _: tick(at)) if tick else None
        )
    finally:
        reads.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    times = reads.runner.times
    parts = {"read": times.read, "decode": times.decode, "applying": times.applying}
    parts.update((f"apply:{store}", spent) for store, spent in times.apply.items())
    return Pass(name, applied, seconds, cpu, megabytes(directory), parts)


def bulk_rebuild(
    name: str,
    recorder: ApplicationRecorder,
    directory: Path,
    factories: Factories,
    page: int,
    tick: Tick | None = None,
) -> Pass:
    """What ``crm rebuild`` does: read the store's events once, derive each read model
    in SQL into its own new DuckDB file (``projections/bulk.py``), let the runner apply
    what came since, swap it in — all timed. Parts: read, prepare (the events shaped
    in DuckDB), and each read model's build."""
    started, cpu = time.perf_counter(), time.process_time()
    files = ReadFiles(directory)
    staged = stage(recorder, progress=(lambda at, _: tick(at)) if tick else None)
    parts = {"read": staged.read_seconds, "prepare": staged.prepare_seconds}
    events = len(staged)
    for model, factory in factories.items():
        rebuilt = rebuild_model(recorder, files, model, factory, batch_size=page, staged=staged)
        parts[f"build:{model}"] = rebuilt.seconds
        events = min(events, rebuilt.events)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Pass(name, events, seconds, cpu, megabytes(directory), parts)


# ---------------------------------------------------------------- profile


#: Modules of the read side that are machinery, not projectors.
MACHINERY = frozenset(
    {"events", "tables", "runner", "store", "projector", "host", "files", "registry"}
)


@dataclass
class Profile:
    events: int
    seconds: float
    #: (bucket, seconds): time inside each part, callees included; see :func:`buckets`.
    buckets: list[tuple[str, float]]
    #: (function, own seconds, calls): where the interpreter spent its own time.
    hottest: list[tuple[str, float, int]]


def profile_rebuild(
    recorder: ApplicationRecorder,
    directory: Path,
    factories: Factories,
    page: int,
    stop: int,
    top: int = 20,
) -> Profile:
    """cProfile of a rebuild of every read model up to position ``stop``."""
    reads = ReadModels(recorder, directory, factories, batch_size=page)
    profiler = cProfile.Profile()
    try:
        started = time.perf_counter()
        profiler.enable()
        applied = reads.runner.catch_up(stop=stop)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        reads.close()
    stats = pstats.Stats(profiler)
    return Profile(applied, seconds, buckets(stats, seconds), hottest(stats, top))


Func = tuple[str, int, str]


def _module(func: Func) -> str:
    """``projections/timeline.py`` -> ``projections.timeline``; builtins by their owner."""
    filename, _, name = func
    if filename == "~":
        for owner in ("duckdb", "pyarrow", "orjson", "sqlite3", "psycopg"):
            if owner in name:
                return owner
        return "builtins"
    parts = Path(filename).with_suffix("").parts
    for anchor in ("projections", "eventsourcing", "pyarrow", "duckdb", "psycopg"):
        if anchor in parts:
            return ".".join(parts[parts.index(anchor) :])
    return parts[-1] if parts else filename


def buckets(stats: pstats.Stats, wall: float) -> list[tuple[str, float]]:
    """The parts of a rebuild; the top-level ones do not overlap, "of which" rows are
    parts of the row above:

    - read: the store's ``select_notifications`` (with building its notifications)
    - decode: ``projections/events.py`` (stored JSON -> :class:`Recorded`)
    - handlers: <projector>: that projector's module entered from the machinery (its
      handlers, ``load``, any ``apply`` of its own), with everything it calls
    - flush: ``Table.flush``; of which building the Arrow tables, and the DuckDB
      ``INSERT … SELECT``/``DELETE`` statements (DuckDB's C++ code is invisible to
      cProfile: its time is the own time of the functions that call it)
    - transaction: the store's own time in ``apply``: DuckDB ``begin``, the position
      ``UPDATE`` and ``commit`` (writing the WAL, checkpoints)
    """
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    totals: Counter[str] = Counter()
    entry_points = {"projections.projector", "projections.store", "projections.runner"}
    for func, (_, _, own, cumulative, callers) in raw.items():
        module, name = _module(func), func[2]
        if name == "select_notifications" and module.startswith("eventsourcing"):
            totals[READ] += cumulative
        elif module == "projections.events" and name == "decode":
            totals[DECODE] += cumulative
        elif module == "projections.tables" and name == "flush":
            totals[FLUSH] += cumulative
        elif module == "projections.tables" and name == "_arrow":
            totals[ARROW] += cumulative
        elif module == "projections.tables" and name in ("_insert", "_delete_keys"):
            totals[STATEMENTS] += own
        elif module == "projections.store" and name == "apply":
            totals[TRANSACTION] += own
        if module.startswith("projections.") and module.split(".")[1] not in MACHINERY:
            for caller, edge in callers.items():
                if _module(caller) in entry_points:
                    totals[f"handlers: {module.split('.')[1]}"] += edge[3]
    handlers = sorted(k for k in totals if k.startswith("handlers: "))
    top = [READ, DECODE, *handlers, FLUSH, TRANSACTION]
    other = wall - sum(totals[k] for k in top)
    order = [READ, DECODE, *handlers, FLUSH, ARROW, STATEMENTS, TRANSACTION]
    return [(k, totals[k]) for k in order] + [(OTHER, max(0.0, other))]


READ = "read (select_notifications)"
DECODE = "decode (projections/events.py)"
FLUSH = "flush (Table.flush, every table)"
ARROW = "  of which building Arrow tables"
STATEMENTS = "  of which DuckDB INSERT/DELETE statements"
TRANSACTION = "transaction (DuckDB begin, positions, commit)"
OTHER = "other (runner, profiler overhead)"


def hottest(stats: pstats.Stats, top: int) -> list[tuple[str, float, int]]:
    raw: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    rows = []
    for (filename, line, name), (_, calls, own, _, _) in ranked:
        where = name if filename == "~" else f"{_module((filename, line, name))}:{line} {name}"
        rows.append((where, own, calls))
    return rows


# ---------------------------------------------------------------- live lag


@dataclass
class Lag:
    offered_rate: float
    seconds: float
    threads: int
    commands: int = 0
    by_command: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_samples: list[str] = field(default_factory=list)
    #: Seconds from a command's commit until every read model had applied it.
    lags: list[float] = field(default_factory=list)
    #: Seconds ``execute`` took (load, decide, save), for context.
    latencies: list[float] = field(default_factory=list)
    not_visible: int = 0
    runner_error: str | None = None
    #: False for the write path alone: no read models ran, no lag was measured.
    read_models: bool = True

    @property
    def achieved_rate(self) -> float:
        return self.commands / self.seconds if self.seconds else float("nan")


@dataclass
class DealSlot:
    deal_id: UUID
    stages: list[str]
    index: int


@dataclass
class Lane:
    """What one driving thread works on: its own deals and tasks (no two threads
    change the same record, so no command loses a race)."""

    actor: Authority
    deals: list[DealSlot]
    tasks: list[UUID]
    contacts: list[UUID]
    accounts: list[UUID]


def make_lanes(history: History, threads: int) -> list[Lane]:
    """One lane per thread, acting as a rep on that rep's own deals, tasks and contacts
    (what the permission table lets a rep change or link); threads acting as the same
    rep split them."""
    reps = history.reps
    lanes = []
    for i in range(threads):
        rep = reps[i % len(reps)]
        sharing = [j for j in range(threads) if j % len(reps) == i % len(reps)]
        k, n = sharing.index(i), len(sharing)
        deals = [
            DealSlot(
                d.id,
                [s.name for s in history.pipeline_by_id[d.pipeline_id].stages],
                [s.id for s in history.pipeline_by_id[d.pipeline_id].stages].index(d.stage_id),
            )
            for d in history.open_deals
            if d.owner_id == rep.id
        ]
        tasks = [t.id for t in history.open_tasks if t.assignee_id == rep.id]
        # Interactions link the rep's own contacts: a rep may link only what they read.
        contacts = [c.id for c in history.contacts if c.owner_id == rep.id]
        lanes.append(
            Lane(
                rep.authority,
                deals[k::n],
                tasks[k::n],
                contacts[k::n],
                [a.id for a in history.accounts][i::threads],
            )
        )
    return lanes


#: The live command mix, by weight.
LIVE_MIX = {
    "log-call": 30,
    "log-email": 15,
    "log-note": 10,
    "move-deal": 25,
    "create-task": 8,
    "complete-task": 6,
    "create-contact": 6,
}


class Driver:
    """Builds the next command of a lane."""

    def __init__(self, lane: Lane, seed: int, tag: str) -> None:
        self.lane = lane
        self.rng = random.Random(seed)
        self.tag = f"{tag}-{seed}"
        self.serial = itertools.count()
        self.labels = [label for label, weight in LIVE_MIX.items() for _ in range(weight)]

    def next(self) -> tuple[str, Payload]:
        rng, lane = self.rng, self.lane
        label = rng.choice(self.labels)
        now = datetime.now(UTC)
        if label == "move-deal" and lane.deals:
            slot = rng.choice(lane.deals)
            slot.index = (slot.index + 1) % len(slot.stages)
            return label, MoveDeal(deal_id=slot.deal_id, stage=slot.stages[slot.index])
        if label == "complete-task" and lane.tasks:
            return label, CompleteTask(task_id=lane.tasks.pop())
        if label == "create-task" and lane.deals:
            return label, CreateTask(
                title="Send the revised offer",
                due_at=now + timedelta(days=3),
                linked_kind=RecordKind.DEAL,
                linked_id=rng.choice(lane.deals).deal_id,
            )
        if label == "create-contact":
            n = next(self.serial)
            return label, CreateContact(
                first_name="Live",
                last_name=f"Contact {n}",
                emails=[f"live{n}.{self.tag}@bench.example"],
                account_id=rng.choice(lane.accounts),
            )
        contact = rng.choice(lane.contacts)
        deal = rng.choice(lane.deals).deal_id if lane.deals else None
        occurred = now - timedelta(minutes=5)
        if label == "log-email":
            return label, LogEmail(
                occurred_at=occurred,
                direction=Direction.INBOUND,
                subject="Re: proposal",
                body="Thanks, we will review it this week.",
                contact_ids=[contact],
                deal_id=deal,
            )
        if label == "log-note":
            return label, LogNote(occurred_at=occurred, body="Budget confirmed", deal_id=deal)
        return "log-call", LogCall(
            occurred_at=occurred,
            direction=Direction.OUTBOUND,
            duration_seconds=rng.randrange(30, 1800),
            outcome=CallOutcome.CONNECTED,
            notes="Walked through the proposal",
            contact_ids=[contact],
            deal_id=deal,
        )


def live_lag(
    crm: Crm,
    reads: ReadModels | None,
    lanes: list[Lane],
    rate: float,
    seconds: float,
    tag: str,
    tick: Callable[[float, int], None] | None = None,
    drain_timeout: float = 30.0,
) -> Lag:
    """Drive ``rate`` commands/s for ``seconds`` through ``execute``, one thread per
    lane (see :func:`make_lanes`; keep them for the next run), against a server-like
    setup: ``reads``' runner running in this process and woken after each commit (as
    ``api/app.py`` wires it). For each command, the time from its commit (``execute``
    returned) until every read model's position reached the command's position.

    With ``reads`` None, the same drivers run with no read model in the process: what
    the write path alone manages at that offered rate (no lag is measured)."""
    result = Lag(
        offered_rate=rate, seconds=seconds, threads=len(lanes), read_models=reads is not None
    )
    committed: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    runner = reads.runner if reads is not None else None
    if reads is not None:
        crm.commit_listeners.append(reads.runner.wake)
        reads.start()
    lock = threading.Lock()
    slots = itertools.count()
    started = time.perf_counter() + 0.2
    deadline = started + seconds
    drain_deadline = float("inf")  # set once the drivers are done

    def drive(lane: Lane, index: int) -> None:
        driver = Driver(lane, index, tag)
        while True:
            due = started + next(slots) / rate
            if due >= deadline:
                return
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            label, command = driver.next()
            sent = time.perf_counter()
            try:
                receipt = execute(crm, command, Context(actor=lane.actor, source="api"))
            except Exception as error:
                with lock:
                    result.failures[type(error).__name__] += 1
                    if len(result.failure_samples) < 5:
                        result.failure_samples.append(f"{label}: {error!r}"[:300])
                continue
            done = time.perf_counter()
            if runner is not None:
                committed.put((receipt.position, done))
            with lock:
                result.commands += 1
                result.by_command[label] += 1
                result.latencies.append(done - sent)

    def watch(runner: Runner) -> None:
        waiting: list[tuple[int, float]] = []
        finished = False
        while True:
            try:
                while True:
                    item = committed.get(block=not waiting and not finished, timeout=0.05)
                    if item is None:
                        finished = True
                        break
                    heapq.heappush(waiting, item)
            except queue.Empty:
                pass
            if not waiting:
                if finished:
                    return
                continue
            if runner.wait_for(waiting[0][0], timeout=0.02):
                seen = time.perf_counter()
                reached = runner.position
                while waiting and waiting[0][0] <= reached:
                    _, at = heapq.heappop(waiting)
                    result.lags.append(seen - at)
            elif finished and time.perf_counter() > drain_deadline:
                result.not_visible = len(waiting)
                return

    watcher = (
        threading.Thread(target=watch, args=(runner,), name="lag-watch", daemon=True)
        if runner is not None
        else None
    )
    workers = [
        threading.Thread(target=drive, args=(lane, i), name=f"drive-{i}", daemon=True)
        for i, lane in enumerate(lanes)
    ]
    try:
        if watcher is not None:
            watcher.start()
        for worker in workers:
            worker.start()
        while any(w.is_alive() for w in workers):
            time.sleep(0.25)
            if tick is not None:
                tick(time.perf_counter() - started, result.commands)
        result.seconds = time.perf_counter() - started
        drain_deadline = time.perf_counter() + drain_timeout
        committed.put(None)
        if watcher is not None:
            watcher.join(drain_timeout + 5)
    finally:
        if reads is not None:
            crm.commit_listeners.remove(reads.runner.wake)
            result.runner_error = reads.runner.status.error
            reads.close()
    return result
