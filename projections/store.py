"""The DuckDB database of the read models, with each projection's position.

Rows and the position they reach are written in one DuckDB transaction, so a crash
leaves every read model at a committed position. It is also an eventsourcing
``TrackingRecorder`` (projection name = application name), and passes the library's
own ``TrackingRecorderTestCase``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import monotonic

import duckdb
from eventsourcing.persistence import (
    IntegrityError,
    Tracking,
    TrackingRecorder,
    WaitInterruptedError,
)

from projections.events import Recorded
from projections.projector import Projector

CHECKPOINT_THRESHOLD = "64MB"
POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_positions "
    "(projection VARCHAR PRIMARY KEY, position BIGINT NOT NULL)"
)


class ReadStore(TrackingRecorder):
    """One DuckDB database (a file, or in memory) holding read models and positions."""

    def __init__(
        self,
        path: Path | str | None = None,
        projectors: Sequence[Projector] = (),
        read_only: bool = False,
    ) -> None:
        self.path = Path(path) if path else None
        if self.path and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path) if self.path else ":memory:", read_only=read_only)
        self.projectors = list(projectors)
        self._changed = threading.Condition()
        self._write_lock = threading.Lock()
        if not read_only:
            # DuckDB checkpoints when its WAL passes 16MB by default: a rebuild then
            # rewrites tables and indexes after every few batches. At 64MB a rebuild of
            # 200k events takes ~13% less CPU; the WAL replayed after a crash stays small.
            self.con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            self.con.execute(POSITIONS_DDL)
            for projector in self.projectors:
                projector.create(self.con)
                self.con.execute(
                    "INSERT INTO projection_positions VALUES (?, 0) ON CONFLICT DO NOTHING",
                    [projector.name],
                )
        self._positions: dict[str, int] = dict(
            self.con.execute("SELECT projection, position FROM projection_positions").fetchall()
        )
        for projector in self.projectors:
            projector.load(self.con)

    def close(self) -> None:
        self.con.close()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection for one thread's reads; sees only committed batches."""
        return self.con.cursor()

    def position(self, projection: str) -> int:
        return self._positions.get(projection, 0)

    def low_position(self) -> int:
        """The lowest position among this store's projectors."""
        return min((self.position(p.name) for p in self.projectors), default=0)

    def positions(self) -> dict[str, int]:
        return dict(self._positions)

    def apply(
        self,
        batches: Sequence[tuple[Projector, Sequence[Recorded]]],
        position: int,
        also: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> None:
        """Apply each projector's events and move all of them to ``position``, atomically;
        ``also`` writes in the same transaction (a Kafka source's offsets)."""
        with self._write_lock:
            self.con.begin()
            try:
                for projector, events in batches:
                    projector.apply(self.con, events)
                    self.con.execute(
                        "UPDATE projection_positions SET position = ? WHERE projection = ?",
                        [position, projector.name],
                    )
                if also is not None:
                    also(self.con)
                self.con.commit()
            except BaseException:
                self.con.rollback()
                for projector, _ in batches:
                    projector.discard(self.con)
                raise
            self.moved_to(position, [projector.name for projector, _ in batches])

    def moved_to(self, position: int, projections: Sequence[str]) -> None:
        """Record in memory that ``projections`` committed ``position`` (a bulk build)."""
        with self._changed:
            for name in projections:
                self._positions[name] = position
            self._changed.notify_all()

    def wait_for(self, projection: str, position: int, timeout: float) -> bool:
        """Block until ``projection`` has reached ``position``; False on timeout."""
        deadline = monotonic() + timeout
        with self._changed:
            while self._positions.get(projection, 0) < position:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    # eventsourcing's TrackingRecorder interface

    def insert_tracking(self, tracking: Tracking) -> None:
        with self._write_lock, transaction(self.con):
            self._insert_tracking(tracking)
        with self._changed:
            self._positions[tracking.application_name] = tracking.notification_id
            self._changed.notify_all()

    def _insert_tracking(self, tracking: Tracking) -> None:
        current = self.max_tracking_id(tracking.application_name)
        if current is not None and tracking.notification_id <= current:
            raise IntegrityError(
                f"{tracking.application_name} is at {current}; "
                f"cannot record {tracking.notification_id}"
            )
        self.con.execute(
            "INSERT INTO projection_positions VALUES (?, ?) "
            "ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
            [tracking.application_name, tracking.notification_id],
        )

    def max_tracking_id(self, application_name: str) -> int | None:
        position = self._positions.get(application_name)
        return position or None

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: threading.Event | None = None,
    ) -> None:
        if notification_id is None:
            return
        deadline = monotonic() + timeout
        while not self.wait_for(application_name, notification_id, min(0.05, timeout)):
            if interrupt is not None and interrupt.is_set():
                raise WaitInterruptedError
            if monotonic() > deadline:
                raise TimeoutError(
                    f"timed out waiting for {application_name} to reach {notification_id}"
                )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()
