"""The projection runner: reads pages of the event log and applies them in batches.

Catch-up reads pages of notifications after the lowest position among the
read stores; each projector gets only the events beyond its own position (they may
differ after a rebuild was swapped in). Each store applies its part of a page in
one DuckDB transaction, rows and position together; several stores do so side by
side. Live, it sleeps until woken — in process, right after a commit — or until the
poll interval passes (writers in other processes). A failing projector stops the
runner with :class:`ProjectionError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import monotonic, perf_counter

from eventsourcing.persistence import ApplicationRecorder

from projections.events import Recorded, decode
from projections.projector import Projector
from projections.store import ReadStore

log = logging.getLogger("crm.projections")

Progress = Callable[[int, int], None]


@dataclass
class RunnerStatus:
    running: bool = False
    error: str | None = None


@dataclass
class RunnerTimes:
    """Where a runner's time went since it was made, in seconds (benchmarks, logs)."""

    read: float = 0.0
    decode: float = 0.0
    #: Applying batches to the stores, flush and commit included (they overlap: wall time).
    applying: float = 0.0
    #: Per store (its projectors' names): the time it spent applying its batches.
    apply: dict[str, float] = field(default_factory=dict)


class Runner:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        stores: Sequence[ReadStore],
        batch_size: int = 10_000,
        poll_interval: float = 0.5,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.stores = list(stores)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        #: Called by the runner's thread between two batches (e.g. to swap in a rebuild).
        self.between_batches = between_batches
        self.status = RunnerStatus()
        self.times = RunnerTimes()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def position(self) -> int:
        """The lowest position among the projectors: everything up to it is applied."""
        return min((store.low_position() for store in self.stores), default=0)

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def step(self, stop: int | None = None) -> int:
        """Apply the next page (up to ``stop`` if given); returns how many events it read."""
        start = self.position
        if stop is not None and start >= stop:
            return 0
        began = perf_counter()
        page = self.recorder.select_notifications(
            start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        read = perf_counter()
        self.times.read += read - began
        if not page:
            return 0
        events = [decode(n) for n in page]
        self.times.decode += perf_counter() - read
        last = events[-1].position
        due = [store for store in self.stores if store.low_position() < last]
        applying = perf_counter()
        if len(due) == 1:
            self._apply(due[0], events, start, last)
        elif due:
            # Each store is its own DuckDB database: while one runs its SQL and commits
            # (DuckDB releases the GIL), another runs its projectors' Python. A batch
            # then takes as long as its slowest store, not the sum of all: the live lag
            # halves. Every store finishes its batch before a failure is raised.
            pool = self._pool or self._start_pool()
            futures = [pool.submit(self._apply, store, events, start, last) for store in due]
            failures = [future.exception() for future in futures]
            for failure in failures:
                if failure is not None:
                    raise failure
        self.times.applying += perf_counter() - applying
        return len(events)

    def _apply(self, store: ReadStore, events: Sequence[Recorded], start: int, last: int) -> None:
        batches: list[tuple[Projector, Sequence[Recorded]]] = []
        for projector in store.projectors:
            after = store.position(projector.name)
            mine = [e for e in events if e.position > after and projector.wants(e.name)]
            batches.append((projector, mine))
        log.debug("applying positions %d..%d to %s", start + 1, last, store.path)
        applying = perf_counter()
        store.apply(batches, last)
        key = ",".join(p.name for p in store.projectors)
        self.times.apply[key] = self.times.apply.get(key, 0.0) + perf_counter() - applying
        log.debug("committed position %d to %s", last, store.path)

    def _start_pool(self) -> ThreadPoolExecutor:
        self._pool = ThreadPoolExecutor(
            max_workers=len(self.stores), thread_name_prefix="projection-store"
        )
        return self._pool

    def catch_up(self, stop: int | None = None, progress: Progress | None = None) -> int:
        """Apply everything up to ``stop`` (default: the head when called)."""
        target = stop if stop is not None else self.head()
        applied = 0
        while self.position < target:
            read = self.step(stop=target)
            if read == 0:
                break
            applied += read
            if progress is not None:
                progress(self.position, target)
        return applied

    def wake(self) -> None:
        """Tell the runner that new events were committed (called after each save)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projection-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _run(self) -> None:
        self.status.running = True
        try:
            while not self._stop.is_set():
                self._wake.clear()
                if self.between_batches is not None:
                    self.between_batches()
                if self.step() == 0:
                    self._wake.wait(self.poll_interval)
        except Exception as error:
            self.status.error = str(error)
            log.exception("projection runner stopped")
        finally:
            self.status.running = False

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every projector has reached ``position``, at most ``timeout`` s."""
        deadline = monotonic() + timeout
        for store in self.stores:
            for projector in store.projectors:
                remaining = max(0.0, deadline - monotonic())
                if not store.wait_for(projector.name, position, remaining):
                    return False
        return True
