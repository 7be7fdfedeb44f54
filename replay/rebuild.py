"""Rebuild a read model from position 0 into a new DuckDB file, then swap it in.

Read models with a bulk path (``projections/bulk.py``) are derived in SQL from the
store's events, read once; the runner then applies what was committed meanwhile.
The rebuild never touches the read model in use: it writes a new generation beside
it and, only once that has caught up with the store, replaces the pointer
atomically (``ReadFiles.swap``). A failed rebuild deletes its own file and leaves
the pointer — and so the read model everyone reads — as it was. A process holding
the old generation (``crm serve``) switches to the new one between two batches and
removes the old file once the reads that began before the swap have had time to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import duckdb
from eventsourcing.persistence import ApplicationRecorder

from projections.bulk import Staged, build, can_build_in_bulk, has_bulk_path, stage
from projections.files import ReadFiles, discard
from projections.projector import Projector
from projections.runner import Progress, Runner
from projections.store import ReadStore


@dataclass(frozen=True)
class Rebuilt:
    name: str
    path: Path
    position: int
    events: int
    seconds: float
    old_removed: bool

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild(
    recorder: ApplicationRecorder,
    files: ReadFiles,
    name: str,
    factory: Callable[[], Projector],
    batch_size: int = 10_000,
    progress: Progress | None = None,
    staged: Staged | None = None,
) -> Rebuilt:
    """Rebuild read model ``name`` into a new generation and swap it in.

    A read model with a bulk path is built in SQL from ``staged`` (the store's events,
    read once for several read models; read here when not given), then the runner
    applies whatever was committed since with the handlers; one without a bulk path is
    built by the runner from position 0.
    """
    path = files.new_generation(name)
    started = monotonic()
    try:
        store = ReadStore(path, [factory()])
        try:
            events = 0
            runner = Runner(recorder, [store], batch_size=batch_size)
            if can_build_in_bulk(store):
                staged = staged if staged is not None else stage(recorder, progress=progress)
                # The handlers' memory is loaded only for events committed since.
                build(store, staged, load=False)
                events = len(staged)
                head = runner.head()
                if head > staged.position:
                    for projector in store.projectors:
                        projector.load(store.con)
                    events += runner.catch_up(stop=head, progress=progress)
            else:
                events += runner.catch_up(progress=progress)
            position = store.position(name)
            store.con.execute("CHECKPOINT")
        finally:
            store.close()
    except BaseException:
        discard(path)
        raise
    seconds = monotonic() - started
    old = files.swap(name, path)
    return Rebuilt(name, path, position, events, seconds, old is not None and remove_if_unused(old))


def any_bulk(factories: Mapping[str, Callable[[], Projector]]) -> bool:
    """Whether any of these read models builds in bulk (then read the events once, with
    :func:`projections.bulk.stage`, and hand them to each :func:`rebuild`)."""
    return any(has_bulk_path(make()) for make in factories.values())


def remove_if_unused(path: Path) -> bool:
    """Delete an old generation unless a process still holds it (that process will)."""
    if not path.exists():
        return True
    try:
        # Read-only: fails on another process's lock (IOException) and, because the
        # configuration differs, on a connection of this very process (ConnectionException),
        # where a plain connect would share that connection's database and delete its file.
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error:
        return False
    discard(path)
    return True
