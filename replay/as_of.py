"""The whole CRM as of a moment: every read model built from a prefix of the event log.

"As of a moment" means *as recorded by then*: the read models hold exactly the events
the store had recorded at that moment, whatever those events say about when things
happened. (A call logged on 2 October about a meeting on 28 September is not in the
CRM as of 30 September; the live timeline with ``until`` filters by when interactions
happened instead.)

A moment becomes a position with :func:`position_as_of`: a binary search over the
notification ids that decodes one stored event per probe (about 20 probes for a million
events; ids may have gaps). It relies on the order of the timestamps: positions are
assigned in commit order, and each event's ``timestamp`` is taken just before, when its
command decides, so from one command to the next they are non-decreasing in practice.
Within one command they are not: its events are stored aggregate by aggregate,
microseconds apart, out of order; and concurrent writers may commit a command decided
a moment earlier just after one decided later. So the search settles its cut by reading
the events around it (a window widened as needed) for the first one recorded after the
moment: the prefix ends just before it — exact as long as timestamps are out of order
only locally (within a command, or among commands committed together). A moment that
falls within the microseconds in which one command's events were stamped can end the
prefix inside that command: the store keeps no transaction boundary to cut at instead.

A position becomes read models with :func:`read_models_as_of`: the events up to it are
read once (:func:`projections.bulk.stage`) and each read model is derived from them in
SQL into a throw-away in-memory DuckDB (:func:`projections.bulk.build`) — the path of
``crm rebuild``, whose tables equal the projectors' own, row for row.
:class:`AsOfCache` keeps the last few built, so that repeated reads as of the same moment
do not build again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import orjson
from eventsourcing.persistence import ApplicationRecorder

from projections.bulk import Progress, build, stage
from projections.events import StoredNotification
from projections.projector import Projector
from projections.registry import PROJECTORS
from projections.store import ReadStore

#: How many events on either side of a cut are read to settle it (doubled as needed).
SETTLE_WINDOW = 32


@dataclass(frozen=True)
class _Probe:
    position: int
    recorded_at: datetime


def _probe(notification: StoredNotification) -> _Probe:
    state = orjson.loads(notification.state)
    return _Probe(
        notification.id,
        datetime.fromisoformat(state["timestamp"]["_data_"]),
    )


def _first_from(recorder: ApplicationRecorder, start: int, stop: int) -> _Probe | None:
    """The first event with ``start`` ≤ id ≤ ``stop`` (ids may have gaps)."""
    found = recorder.select_notifications(start, 1, stop=stop)
    return _probe(found[0]) if found else None


def head(recorder: ApplicationRecorder) -> int:
    return recorder.max_notification_id() or 0


def position_as_of(recorder: ApplicationRecorder, at: datetime) -> int:
    """The end of the longest prefix of the global order whose events were all recorded
    at or before ``at`` (an aware datetime): 0 before the first event, the head after the
    last (see the module's docstring for the order of timestamps it relies on)."""
    if at.tzinfo is None:
        raise ValueError("as of: a moment with a time zone")
    last = head(recorder)
    low, high = 0, last + 1  # low: all recorded by ``at`` up to it; high: none from it on
    while low + 1 < high:
        middle = (low + high) // 2
        probe = _first_from(recorder, middle, high - 1)
        if probe is not None and probe.recorded_at <= at:
            low = probe.position
        else:
            high = middle
    return _settle(recorder, low, at)


def _settle(recorder: ApplicationRecorder, cut: int, at: datetime) -> int:
    """The search assumed timestamps in order; within a command they are not. Around the
    cut, find the first event recorded after ``at``: the prefix ends just before it."""
    window = SETTLE_WINDOW
    last = head(recorder)
    while True:
        start = max(1, cut - window + 1)
        page = [
            _probe(n) for n in recorder.select_notifications(start, 2 * window, stop=cut + window)
        ]
        later = next((i for i, event in enumerate(page) if event.recorded_at > at), None)
        if (later == 0 and start > 1) or (later is None and cut + window < last):
            window *= 2  # the disorder reaches past the window: look wider
            continue
        if later is None:
            return page[-1].position if page else 0
        return page[later - 1].position if later > 0 else 0


def recorded_at(recorder: ApplicationRecorder, position: int) -> datetime | None:
    """When the last event at or before ``position`` was recorded; None if there is none."""
    window = SETTLE_WINDOW
    while position > 0:
        start = max(1, position - window + 1)
        found = recorder.select_notifications(start, window, stop=position)
        if found:
            return _probe(found[-1]).recorded_at
        if start == 1:
            return None
        position, window = start - 1, window * 2
    return None


@dataclass
class AsOf:
    """Read models as of ``position``, in one throw-away in-memory DuckDB database.

    ``position`` is the last event they hold (0 for none), never beyond what was asked.
    """

    position: int
    names: tuple[str, ...]
    store: ReadStore
    events: int
    seconds: float

    def reader(self) -> duckdb.DuckDBPyConnection:
        return self.store.reader()

    def close(self) -> None:
        self.store.close()


def read_models_as_of(
    recorder: ApplicationRecorder,
    position: int,
    names: Sequence[str] | None = None,
    factories: Mapping[str, Callable[[], Projector]] = PROJECTORS,
    progress: Progress | None = None,
) -> AsOf:
    """Read models ``names`` (default: all) as of ``position``: the events up to it read
    once and shared by every read model, each derived from them in SQL."""
    chosen = tuple(names) if names is not None else tuple(factories)
    unknown = [name for name in chosen if name not in factories]
    if unknown:
        raise ValueError(f"no read model {', '.join(unknown)}; there are: {', '.join(factories)}")
    staged = stage(recorder, upto=max(0, position), progress=progress)
    store = ReadStore(None, [factories[name]() for name in chosen])
    try:
        seconds = build(store, staged)
    except BaseException:
        store.close()
        raise
    return AsOf(
        staged.position,
        chosen,
        store,
        len(staged),
        staged.read_seconds + staged.prepare_seconds + sum(seconds.values()),
    )


class AsOfBusyError(Exception):
    """Too many reads as of a moment are being built at once."""


class AsOfCache:
    """The last few read models built as of a position, one read model per entry.

    An entry dropped from the cache is not closed: a read that began on it keeps its
    own connection, and the database goes when the last one is closed. Builds of one
    entry are made once, however many requests ask for it at the same time.
    """

    def __init__(
        self,
        recorder: ApplicationRecorder,
        size: int = 4,
        factories: Mapping[str, Callable[[], Projector]] = PROJECTORS,
        builders: int = 1,
        wait_seconds: float = 30.0,
    ) -> None:
        self.recorder = recorder
        self.size = size
        #: At most ``builders`` builds at once (each reads a prefix of the log into
        #: memory); a request that waits longer than ``wait_seconds`` for its turn is
        #: refused with :class:`AsOfBusyError` rather than piling up.
        self._builders = threading.BoundedSemaphore(builders)
        self.wait_seconds = wait_seconds
        self.factories = factories
        self._entries: OrderedDict[tuple[int, str], AsOf] = OrderedDict()
        self._building: dict[tuple[int, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, position: int, name: str) -> AsOf:
        key = (position, name)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                found = self._entries.get(key)
            if found is not None:  # built by the request this one waited for
                return found
            if not self._builders.acquire(timeout=self.wait_seconds):
                with self._lock:
                    self._building.pop(key, None)
                raise AsOfBusyError("other reads as of a moment are being built; retry shortly")
            try:
                built = read_models_as_of(self.recorder, position, [name], self.factories)
            except BaseException:
                self._builders.release()
                with self._lock:
                    self._building.pop(key, None)
                raise
            self._builders.release()
            with self._lock:
                self.builds += 1
                self._entries[key] = built
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._building.pop(key, None)
            return built
