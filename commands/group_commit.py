"""Group commit: the events of commands saved at the same moment go to the store in one
transaction.

Every save on the store is serialised (PostgreSQL: eventsourcing locks the events
table to keep positions in commit order; SQLite: one writer), so under concurrent
commands most of a save's time is spent waiting for the others' round trips and
commits. Here a command thread hands its stored events to :class:`GroupCommitter` and
waits. Whichever waiting thread finds no commit under way becomes the leader: it takes
every save queued so far (its own included), inserts them all in one transaction,
hands each thread its own positions, and steps down; the next leader takes what
arrived meanwhile. There is no timer: a lone command commits at once, alone.

The guarantees of one save per command hold:

- a command is answered only after the transaction holding its events has committed;
- the events of one command are all in one transaction, and in their order;
- a conflict (another writer at the same version: ``IntegrityError``) fails only the
  command that caused it: when a group's transaction fails on one, nothing of the group
  was written, and each save of the group is retried alone, in arrival order — the
  conflicting one fails as it would have alone, the others commit;
- any other failure of the store (it is down) fails every command of the group, none of
  which was written.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent

#: The most events one group's transaction takes; a save larger than this goes alone.
MAX_GROUP_EVENTS = 2_000


@dataclass
class _Save:
    events: Sequence[StoredEvent]
    done: bool = False
    positions: Sequence[int] = ()
    error: BaseException | None = None

    def result(self) -> Sequence[int]:
        if self.error is not None:
            raise self.error
        return self.positions


@dataclass
class GroupStats:
    """What the committer did (for benchmarks and logs)."""

    transactions: int = 0
    saves: int = 0
    events: int = 0
    retried_alone: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


class GroupCommitter:
    """Inserts the stored events of concurrent saves together (see the module)."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        max_events: int = MAX_GROUP_EVENTS,
        enabled: bool = True,
    ) -> None:
        self.recorder = recorder
        #: Off: every save is its own transaction, as the library does it (a baseline).
        self.enabled = enabled
        self.max_events = max_events
        self.stats = GroupStats()
        self._queue: list[_Save] = []
        self._committing = False
        self._changed = threading.Condition()

    def insert(self, events: Sequence[StoredEvent]) -> Sequence[int]:
        """Insert ``events`` atomically, in a group with any concurrent saves; their
        positions once committed. Raises what a lone ``insert_events`` would raise."""
        if not self.enabled:
            return list(self.recorder.insert_events(list(events)) or ())
        mine = _Save(events)
        with self._changed:
            self._queue.append(mine)
            while not mine.done and self._committing:
                self._changed.wait()
            if mine.done:
                return mine.result()
            self._committing = True
            group = self._take_group(mine)
        try:
            self._commit(group)
        finally:
            with self._changed:
                self._committing = False
                self._changed.notify_all()
        return mine.result()

    def _take_group(self, leader: _Save) -> list[_Save]:
        """The saves queued before this commit, in arrival order, up to ``max_events``
        (the leader's own save always; the rest wait for the next group)."""
        group: list[_Save] = []
        count = 0
        rest: list[_Save] = []
        for save in self._queue:
            if save is leader or count + len(save.events) <= self.max_events or not group:
                group.append(save)
                count += len(save.events)
            else:
                rest.append(save)
        self._queue = rest
        return group

    def _commit(self, group: list[_Save]) -> None:
        stats = self.stats
        stats.transactions += 1
        stats.saves += len(group)
        stats.largest = max(stats.largest, len(group))
        stats.sizes[len(group)] = stats.sizes.get(len(group), 0) + 1
        if len(group) == 1:
            self._commit_alone(group[0])
            return
        events = [event for save in group for event in save.events]
        try:
            positions = self.recorder.insert_events(events)
        except IntegrityError:
            # Nothing of the group was written: each save again, alone, in order.
            stats.retried_alone += len(group)
            for save in group:
                self._commit_alone(save)
            return
        except BaseException as error:  # nothing was written: every save fails with it
            for save in group:
                save.error, save.done = error, True
            return
        stats.events += len(events)
        ids = list(positions or ())
        start = 0
        for save in group:
            end = start + len(save.events)
            save.positions = ids[start:end]
            save.done = True
            start = end

    def _commit_alone(self, save: _Save) -> None:
        try:
            save.positions = list(self.recorder.insert_events(list(save.events)) or ())
            self.stats.events += len(save.events)
        except BaseException as error:  # handed to the save's own thread
            save.error = error
        save.done = True
