"""The read models of one process: their DuckDB files, the runner feeding them, the
swap of a rebuilt read model, and read-only snapshots for analysts.

DuckDB lets one process write a database file, and no other process may open it
meanwhile, not even read-only. The process that holds the read models (``crm serve``
or ``crm project``) therefore also answers two requests made through files in the
read directory: a rebuilt generation to swap in (``<name>.current`` replaced by
``crm rebuild``) and snapshots for ``crm sql``/``crm export`` (``snapshot-<id>.request``,
answered with the directory ``snapshot-<id>``, which the asking process removes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import duckdb
from eventsourcing.persistence import ApplicationRecorder

from projections.files import ReadFiles, discard, sql_string
from projections.projector import Projector
from projections.registry import PROJECTORS
from projections.runner import Runner
from projections.store import ReadStore

log = logging.getLogger("crm.projections")

#: How long a replaced read model keeps answering the reads that started before the swap.
RETIRE_AFTER_SECONDS = 30.0
#: ``snapshot-<id>.request`` (the read models wanted, one a line; none = all) asks for
#: a snapshot into the directory ``snapshot-<id>``; it is removed once that is written.
SNAPSHOT_PREFIX = "snapshot-"
SNAPSHOT_REQUEST_SUFFIX = ".request"


class ReadModelsLockedError(Exception):
    """The read model files are held by another process."""


def open_store(path: Path | None, projectors: Sequence[Projector]) -> ReadStore:
    try:
        return ReadStore(path, projectors)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise ReadModelsLockedError(
                f"{path} is open in another process (crm serve or crm project): "
                "DuckDB allows one writer per file"
            ) from None
        raise


class ReadModels:
    """Every registered read model, each in its own DuckDB file (or in memory)."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        directory: Path | None,
        factories: Mapping[str, Callable[[], Projector]] = PROJECTORS,
        batch_size: int = 10_000,
        poll_interval: float = 0.5,
    ) -> None:
        self.files = ReadFiles(directory) if directory is not None else None
        self.factories = dict(factories)
        self.stores: dict[str, ReadStore] = {}
        self._stamps: dict[str, int] = {}
        self._retired: list[tuple[float, ReadStore]] = []
        self._lock = threading.Lock()
        try:
            for name in self.factories:
                self.stores[name] = self._open(name)
        except BaseException:
            self.close()
            raise
        self.runner = Runner(
            recorder,
            list(self.stores.values()),
            batch_size=batch_size,
            poll_interval=poll_interval,
            between_batches=self.maintain,
        )

    def _open(self, name: str) -> ReadStore:
        if self.files is None:
            return ReadStore(None, [self.factories[name]()])
        stamp = self.files.stamp(name)
        path = self.files.current(name)
        store = open_store(path, [self.factories[name]()])
        # Only once open: a generation that could not be opened is tried again.
        self._stamps[name] = stamp or self.files.stamp(name)
        return store

    def store(self, name: str) -> ReadStore:
        with self._lock:
            return self.stores[name]

    def wait_for(self, name: str, position: int, timeout: float) -> bool:
        """Block until read model ``name`` has reached ``position``; False on timeout.
        Follows a swap: the store that was current when the wait began may be retired."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self.store(name).wait_for(name, position, min(0.1, max(0.0, remaining))):
                return True
            if remaining <= 0:
                return False

    def positions(self) -> dict[str, int]:
        with self._lock:
            return {name: store.position(name) for name, store in self.stores.items()}

    def start(self) -> None:
        self.runner.start()

    def close(self) -> None:
        if hasattr(self, "runner"):
            self.runner.stop()
        with self._lock:
            for store in self.stores.values():
                store.close()
            for _, store in self._retired:
                self._dispose(store)
            self._retired = []

    # Between two batches, in the runner's thread

    def maintain(self) -> None:
        self.swap_in_rebuilds()
        self.close_retired()
        self.write_requested_snapshot()

    def swap_in_rebuilds(self) -> None:
        if self.files is None:
            return
        for name in list(self.stores):
            if self.files.stamp(name) == self._stamps.get(name):
                continue
            old = self.stores[name]
            if self.files.current(name) == old.path:
                self._stamps[name] = self.files.stamp(name)
                continue
            try:
                new = self._open(name)
            except ReadModelsLockedError as error:
                # e.g. `crm sql` reading the new file for a moment: try after the next batch.
                log.warning("read model %s: cannot swap in the rebuild yet: %s", name, error)
                continue
            try:
                # Readers never go back in time: the new generation first reaches the
                # position the old one was at (events committed during the rebuild).
                Runner(self.runner.recorder, [new], batch_size=self.runner.batch_size).catch_up(
                    stop=old.low_position()
                )
            except BaseException:
                new.close()
                raise
            with self._lock:
                self.stores[name] = new
                self.runner.stores = [new if s is old else s for s in self.runner.stores]
                self._retired.append((time.monotonic() + RETIRE_AFTER_SECONDS, old))
            log.info(
                "read model %s: swapped in %s at position %d", name, new.path, new.low_position()
            )

    def close_retired(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [store for deadline, store in self._retired if deadline <= now]
            self._retired = [(d, s) for d, s in self._retired if d > now]
        for store in due:
            self._dispose(store)

    @staticmethod
    def _dispose(store: ReadStore) -> None:
        store.close()
        if store.path is not None:
            discard(store.path)

    def write_requested_snapshot(self) -> None:
        """Answer every pending snapshot request with a copy of the read models it names.

        The copy first catches up with the store, so it holds every event committed
        before the request, also those written by other processes.
        """
        if self.files is None:
            return
        answer_snapshot_requests(self.files.directory, self.stores, before=self.runner.catch_up)


def answer_snapshot_requests(
    directory: Path, stores: Mapping[str, ReadStore], before: Callable[[], object] | None = None
) -> None:
    """Answer every pending snapshot request in ``directory`` with a copy of the stores
    it names (as of their last committed batch; ``before`` runs first if there is one)."""
    requests = sorted(directory.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_REQUEST_SUFFIX}"))
    if not requests:
        return
    if before is not None:
        before()
    for request in requests:
        try:
            wanted = request.read_text().split()
        except FileNotFoundError:  # the asking process gave up
            continue
        target = request.with_name(request.name.removesuffix(SNAPSHOT_REQUEST_SUFFIX))
        target.mkdir(exist_ok=True)
        for name, store in stores.items():
            if not wanted or name in wanted:
                write_snapshot(store, target / f"{name}.duckdb")
        request.unlink(missing_ok=True)


def write_snapshot(store: ReadStore, path: Path) -> None:
    """A consistent read-only copy of a store's database (its last committed batch)."""
    temporary = path.with_name(path.name + ".tmp")
    discard(temporary)
    con = store.reader()
    try:
        (database,) = con.execute("SELECT current_database()").fetchone() or ("memory",)
        con.execute(f"ATTACH {sql_string(temporary)} AS crm_snapshot")
        try:
            con.execute(f'COPY FROM DATABASE "{database}" TO crm_snapshot')
        finally:
            con.execute("DETACH crm_snapshot")
    finally:
        con.close()
    discard(path)
    temporary.replace(path)
