"""The sequencer puts the relay's messages back in global order, once each, whatever the
order in which partitions are read, with gaps in positions, batches published again
after a relay crash, and restarts from the offsets stored with the applied events."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.events import Recorded
from streaming.sequencer import Batch, Message, SequenceError, Sequencer

PARTITIONS = 3


def event(position: int) -> Recorded:
    return Recorded(position, f"agg-{position}", 1, "Note.Logged", "2026", None, None, None, {})


@dataclass(frozen=True)
class Published:
    partition: int
    position: int
    batch: Batch | None


def publish(seed: int, events: int, crashes: int) -> tuple[list[int], dict[int, list[Published]]]:
    """What a relay puts on the topic: positions with gaps, each aggregate on one
    partition, batches of random sizes, some cut short by a crash and sent again (from
    the batch's first position, possibly as a longer page)."""
    rng = random.Random(seed)
    positions: list[int] = []
    position = 0
    for _ in range(events):
        position += rng.choice([1, 1, 1, 2, 5])  # PostgreSQL's sequence leaves gaps
        positions.append(position)
    aggregates = {p: rng.randrange(max(1, events // 3)) for p in positions}
    partition_of = {p: hash(("agg", aggregates[p])) % PARTITIONS for p in positions}
    log: dict[int, list[Published]] = {n: [] for n in range(PARTITIONS)}
    after, index = 0, 0
    while index < len(positions):
        page = positions[index : index + rng.randint(1, 6)]
        batch = Batch(page[0], len(page), after)
        sent = page
        if crashes and rng.random() < 0.3:
            crashes -= 1
            sent = page[: rng.randrange(1, len(page) + 1)]
            for p in sent:
                log[partition_of[p]].append(Published(partition_of[p], p, batch))
            # The relay restarts: the batch's first message is on the topic, so it
            # resumes before it; its new page may be longer.
            page = positions[index : index + rng.randint(len(page), len(page) + 3)]
            batch = Batch(page[0], len(page), page[0] - 1)
        for p in page:
            log[partition_of[p]].append(Published(partition_of[p], p, batch))
        after = page[-1]
        index += len(page)
    return positions, log


def consume(
    seed: int, log: dict[int, list[Published]], restarts: int, strict: bool = True
) -> list[int]:
    """Read the partitions in a random interleaving, applying what is released and
    storing offsets after each batch; restart from the stored offsets now and then."""
    rng = random.Random(seed)
    sequencer = Sequencer()
    stored: dict[int, tuple[int, int]] = {n: (0, 0) for n in log}  # resume offset, position
    applied: list[int] = []
    for attempt in range(restarts + 1):
        sequencer = Sequencer(max(applied, default=0))
        cursor = {}
        for n, (offset, position) in stored.items():
            sequencer.assign(n, offset, position)
            cursor[n] = offset
        budget = rng.randint(1, 40) if attempt < restarts else 10**9  # the last run ends
        while budget > 0 and any(cursor[n] < len(log[n]) for n in log):
            n = rng.choice([n for n in log if cursor[n] < len(log[n])])
            for _ in range(rng.randint(1, 4)):
                if cursor[n] < len(log[n]):
                    published = log[n][cursor[n]]
                    message = Message(n, cursor[n], event(published.position), published.batch)
                    sequencer.add(message)
                    cursor[n] += 1
                    budget -= 1
            released = sequencer.release(rng.randint(1, 8), strict)
            if released:
                applied.extend(m.event.position for m in released)
                offsets = sequencer.offsets()
                stored = {p: (o.resume_offset, o.position) for p, o in offsets.items()}
        if attempt < restarts:
            continue  # crash: whatever was read and not released is lost
        while released := sequencer.release(8, strict):
            applied.extend(m.event.position for m in released)
            offsets = sequencer.offsets()
            stored = {p: (o.resume_offset, o.position) for p, o in offsets.items()}
    return applied


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    events=st.integers(1, 60),
    crashes=st.integers(0, 4),
    restarts=st.integers(0, 4),
)
def test_every_event_is_released_once_in_global_order(
    seed: int, events: int, crashes: int, restarts: int
) -> None:
    positions, log = publish(seed, events, crashes)
    assert consume(seed, log, restarts) == positions


def test_an_event_is_held_back_until_every_earlier_one_was_read() -> None:
    sequencer = Sequencer()
    for n in range(PARTITIONS):
        sequencer.assign(n, 0, 0)
    batch = Batch(first=1, count=3, after=0)
    sequencer.add(Message(0, 0, event(3), batch))
    sequencer.add(Message(1, 0, event(1), batch))
    # Position 2 (on partition 2) is not read yet: nothing of the batch goes out.
    assert sequencer.release(10, strict=True) == []
    sequencer.add(Message(2, 0, event(2), batch))
    assert [m.event.position for m in sequencer.release(10, strict=True)] == [1, 2, 3]


def test_a_batch_waits_for_the_one_before_it_across_a_gap() -> None:
    sequencer = Sequencer()
    for n in range(PARTITIONS):
        sequencer.assign(n, 0, 0)
    # Batch 1..2 is complete, batch 6.. (read after 4: positions 3..5 are gaps or lost?)
    sequencer.add(Message(0, 0, event(6), Batch(first=6, count=1, after=4)))
    sequencer.add(Message(1, 0, event(1), Batch(first=1, count=2, after=0)))
    sequencer.add(Message(2, 0, event(2), Batch(first=1, count=2, after=0)))
    assert [m.event.position for m in sequencer.release(10, strict=True)] == [1, 2]
    # A batch read after 2 brings position 4; then 6 follows it.
    sequencer.add(Message(2, 1, event(4), Batch(first=4, count=1, after=2)))
    assert [m.event.position for m in sequencer.release(10, strict=True)] == [4, 6]


def test_repeats_are_dropped_and_counted() -> None:
    sequencer = Sequencer()
    sequencer.assign(0, 0, 0)
    batch = Batch(first=1, count=2, after=0)
    assert sequencer.add(Message(0, 0, event(1), batch))
    assert not sequencer.add(Message(0, 1, event(1), batch))
    assert sequencer.add(Message(0, 2, event(2), batch))
    assert not sequencer.add(Message(0, 3, event(2), None))
    assert [m.event.position for m in sequencer.release(10, strict=True)] == [1, 2]
    assert sequencer.repeats == 2


def test_partition_order_releases_what_was_read_without_holding_back() -> None:
    sequencer = Sequencer()
    sequencer.assign(0, 0, 0)
    sequencer.add(Message(0, 0, event(5), Batch(first=3, count=3, after=2)))
    assert [m.event.position for m in sequencer.release(10, strict=False)] == [5]


def test_a_message_without_batch_headers_cannot_be_placed_in_strict_order() -> None:
    sequencer = Sequencer()
    sequencer.assign(0, 0, 0)
    sequencer.add(Message(0, 7, event(1), None))
    with pytest.raises(SequenceError, match="offset 7 of partition 0"):
        sequencer.release(10, strict=True)
