"""Putting the relay's messages back in global order, once each, from several partitions.

The relay publishes the store's events in batches, keyed by aggregate id; a batch is
acknowledged by the broker before the next one is sent, and every message carries
its batch's headers: the batch's first position, its size and the position it was
read after (``streaming/relay.py``). Positions may have gaps (PostgreSQL's sequence),
so what is "the next event" is known only from those headers.

A :class:`Sequencer` takes the messages of the partitions it is assigned, drops
repeats and hands them out for applying:

- **Repeats** (at-least-once: a batch cut short is published again) are recognised by
  their global position. One aggregate's events are on one partition, in order, and
  the relay publishes in global order, so a message whose position is not above the
  highest already read (or applied, after a restart) on its partition is a repeat.
- **Strict order** (this process holds every partition of the topic): an event is
  handed out only when every event before it has been: when its batch directly follows
  what was applied (read after a position already applied) and every message of its
  batch has been read (as many distinct positions as the batch's size). The read model
  is then built in exactly the store's order: identical to one fed from the store.
- **Partition order** (the topic's partitions are shared with other processes): a
  batch's messages on other processes' partitions never arrive here, so nothing can be
  held back for them: events are handed out in position order of what has been read.
  Each aggregate's events stay in order; order across aggregates is global only among
  the events read together.

Counting a batch needs all its messages: after a restart a partition is read again
from the first message of the batch that was being applied (its *resume* offset),
and the messages already applied are counted but not handed out again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from projections.events import Recorded


class SequenceError(Exception):
    """Raised when a message cannot be placed in the global order (it was not published
    by ``crm relay``: it has no batch headers)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What a message's headers say about the relay batch it was published in."""

    first: int
    count: int
    after: int


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    event: Recorded
    batch: Batch | None


@dataclass(frozen=True, slots=True)
class Offsets:
    """Where one partition stands, stored with the rows they cover."""

    #: The offset of the first message not yet applied (what Kafka would be told).
    next_offset: int
    #: Where to read again from after a restart: the first message of the batch in progress.
    resume_offset: int
    #: The highest position applied from this partition (anything not above is a repeat).
    position: int


@dataclass
class _Partition:
    applied: int
    read: int
    next_offset: int
    queue: deque[Message] = field(default_factory=deque)
    #: Batch first position -> offset of its first message read here in this session.
    batch_offsets: dict[int, int] = field(default_factory=dict)


class Sequencer:
    def __init__(self, frontier: int = 0) -> None:
        #: Every event up to here is applied (strict order), or the highest applied.
        self.frontier = frontier
        self._partitions: dict[int, _Partition] = {}
        self._after: dict[int, int] = {}
        self._attempts: dict[tuple[int, int], set[int]] = {}
        #: Batch first position -> the last position of a batch (attempt) read whole.
        self._complete: dict[int, int] = {}
        #: The batch of the last event handed out (strict order).
        self._current: int | None = None
        self.repeats = 0

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    def held(self) -> int:
        """How many messages are read but not handed out yet."""
        return sum(len(p.queue) for p in self._partitions.values())

    def assign(self, partition: int, offset: int, applied: int) -> None:
        """Read ``partition`` from ``offset``; positions up to ``applied`` are applied."""
        self._partitions[partition] = _Partition(applied=applied, read=applied, next_offset=offset)

    def revoke(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def add(self, message: Message) -> bool:
        """Take a message read from its partition; False if it is a repeat."""
        state = self._partitions[message.partition]
        state.next_offset = message.offset + 1
        batch = message.batch
        position = message.event.position
        if batch is not None:
            state.batch_offsets.setdefault(batch.first, message.offset)
            self._after[batch.first] = min(self._after.get(batch.first, batch.after), batch.after)
            seen = self._attempts.setdefault((batch.first, batch.count), set())
            seen.add(position)
            if len(seen) == batch.count:
                self._complete[batch.first] = max(self._complete.get(batch.first, 0), max(seen))
        if position <= state.read:
            self.repeats += 1
            return False
        state.read = position
        state.queue.append(message)
        return True

    def release(self, limit: int, strict: bool) -> list[Message]:
        """Up to ``limit`` messages to apply now, in position order (see the module)."""
        released: list[Message] = []
        while len(released) < limit:
            heads = [s for s in self._partitions.values() if s.queue]
            if not heads:
                break
            state = min(heads, key=lambda s: s.queue[0].event.position)
            message = state.queue[0]
            if strict and not self._due(message):
                break
            state.queue.popleft()
            state.applied = message.event.position
            if message.batch is not None:
                self._current = message.batch.first
            self.frontier = max(self.frontier, message.event.position)
            released.append(message)
        return released

    def _due(self, message: Message) -> bool:
        position = message.event.position
        if position <= self.frontier:
            return True  # behind what is applied: a partition taken over from another process
        batch = message.batch
        if batch is None:
            raise SequenceError(
                f"the message at offset {message.offset} of partition {message.partition} "
                "has no batch headers (not published by crm relay): its place in the "
                "global order is unknown"
            )
        complete = self._complete.get(batch.first)
        return (
            self._after[batch.first] <= self.frontier
            and complete is not None
            and (position <= complete)
        )

    def offsets(self) -> dict[int, Offsets]:
        """Where every assigned partition stands once the messages handed out are applied."""
        keep = self._keep()
        result: dict[int, Offsets] = {}
        for number, state in self._partitions.items():
            next_offset = state.queue[0].offset if state.queue else state.next_offset
            resume = min(
                [next_offset, *(o for first, o in state.batch_offsets.items() if first >= keep)]
            )
            result[number] = Offsets(next_offset, resume, state.applied)
        self._forget_before(keep)
        return result

    def _keep(self) -> int:
        """The first batch whose messages a restart must read again (to count it)."""
        candidates = [
            s.queue[0].batch.first
            for s in self._partitions.values()
            if s.queue and s.queue[0].batch is not None
        ]
        if self._current is not None:
            candidates.append(self._current)
        return min(candidates, default=0)

    def _forget_before(self, keep: int) -> None:
        for state in self._partitions.values():
            for first in [f for f in state.batch_offsets if f < keep]:
                del state.batch_offsets[first]
        for key in [k for k in self._attempts if k[0] < keep]:
            del self._attempts[key]
        for first in [f for f in self._complete if f < keep]:
            del self._complete[first]
        for first in [f for f in self._after if f < keep]:
            del self._after[first]
