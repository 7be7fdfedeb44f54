"""Read models fed from the Kafka topic the relay writes, instead of from the store.

A :class:`KafkaSource` is one member of a consumer group. It reads the relay's
envelopes from the partitions it is assigned, turns each back into the
:class:`~projections.events.Recorded` every projector consumes, puts them in order
and drops repeats (:mod:`streaming.sequencer`), and applies them to the same
projectors and :class:`~projections.store.ReadStore` files as the store-fed runner,
in batches: one DuckDB transaction per store per batch, holding the rows, the
projections' position and the offsets of every partition (``kafka_offsets``).

On start and on every rebalance it seeks each partition to the offsets stored with
the rows, not to Kafka's committed offsets (it commits those too, after each batch,
for monitoring tools only). A crash at any moment leaves each store at a committed
batch; what comes after is read again and its repeats dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from projections.events import Recorded
from projections.projector import Projector
from projections.store import ReadStore
from streaming.envelope import Envelope
from streaming.relay import BATCH_AFTER, BATCH_COUNT, BATCH_FIRST, KafkaTarget
from streaming.sequencer import Batch, Message, Offsets, Sequencer

log = logging.getLogger("crm.projections")

OFFSETS_DDL = (
    "CREATE TABLE IF NOT EXISTS kafka_offsets (topic VARCHAR NOT NULL, "
    "partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, resume_offset BIGINT NOT NULL, "
    "position BIGINT NOT NULL, PRIMARY KEY (topic, partition))"
)

#: Group timings that work with Tansu as well as with Apache Kafka.
CONSUMER_DEFAULTS: dict[str, object] = {
    "max_poll_interval_ms": 5_000,
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
}

#: ``progress(read, end)``: messages read and the partitions' high watermarks, summed.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Lag:
    read: int
    end: int
    held: int

    @property
    def behind(self) -> int:
        return max(0, self.end - self.read)


def message(record: ConsumerRecord) -> Message:
    """A consumed record as the sequencer takes it (``ValueError`` if not an envelope)."""
    headers = dict(record.headers or [])
    batch = None
    if BATCH_FIRST in headers and BATCH_COUNT in headers:
        first = int(headers[BATCH_FIRST])
        # Published before the relay wrote the header: assume no gap before the batch.
        after = int(headers[BATCH_AFTER]) if BATCH_AFTER in headers else first - 1
        batch = Batch(first, int(headers[BATCH_COUNT]), after)
    event = Envelope.from_json(record.value).recorded()
    return Message(record.partition, record.offset, event, batch)


class KafkaSource:
    def __init__(
        self,
        target: KafkaTarget,
        group: str,
        stores: Sequence[ReadStore],
        batch_size: int = 5_000,
        consumer_config: dict[str, object] | None = None,
    ) -> None:
        self.target = target
        self.group = group
        self.stores = list(stores)
        self.batch_size = batch_size
        self.consumer_config = {**CONSUMER_DEFAULTS, **(consumer_config or {})}
        self.applied = 0
        self._stopped = threading.Event()
        #: Per store, per partition: what its ``kafka_offsets`` holds.
        self._stored: list[dict[int, Offsets]] = [self._load(store) for store in self.stores]
        self.sequencer = Sequencer(min((s.low_position() for s in self.stores), default=0))
        self._consumer: KafkaConsumer | None = None

    def _load(self, store: ReadStore) -> dict[int, Offsets]:
        store.con.execute(OFFSETS_DDL)
        rows = store.con.execute(
            "SELECT partition, next_offset, resume_offset, position FROM kafka_offsets "
            "WHERE topic = ?",
            [self.target.topic],
        ).fetchall()
        return {p: Offsets(n, r, pos) for p, n, r, pos in rows}

    @property
    def position(self) -> int:
        return min((s.low_position() for s in self.stores), default=0)

    def stop(self) -> None:
        self._stopped.set()

    def run(
        self,
        once: bool = False,
        progress: Progress | None = None,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        """Consume until stopped, or (``once``) until the assigned partitions are read to
        their ends and nothing more arrives; ``between_batches`` runs after each poll
        (e.g. to answer snapshot requests)."""
        consumer = KafkaConsumer(
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=min(self.batch_size, 5_000),
            **self.target.client_config(),
            **self.consumer_config,
        )
        self._consumer = consumer
        try:
            consumer.subscribe([self.target.topic], listener=_Listener(self))
            quiet = 0
            while not self._stopped.is_set():
                read = self._poll(consumer)
                self._apply_due(consumer)
                if between_batches is not None:
                    between_batches()
                lag = self.lag()
                if progress is not None:
                    progress(lag.read, lag.end)
                if read:
                    quiet = 0
                    continue
                caught_up = bool(consumer.assignment()) and lag.behind == 0
                if caught_up:
                    log.debug("caught up: offsets %s", self._offset_text())
                quiet = quiet + 1 if caught_up else 0
                if once and quiet >= 2:
                    break
        finally:
            self._consumer = None
            consumer.close()

    def _poll(self, consumer: KafkaConsumer) -> int:
        """Read what has arrived (up to a batch); returns how many messages."""
        read = 0
        timeout = 200
        while read < self.batch_size and not self._stopped.is_set():
            records = consumer.poll(timeout_ms=timeout)
            if not records:
                break
            for batch in records.values():
                for record in batch:
                    self.sequencer.add(message(record))
                    read += 1
            timeout = 0
        return read

    def strict(self, consumer: KafkaConsumer) -> bool:
        """Whether this process holds every partition of the topic."""
        partitions = consumer.partitions_for_topic(self.target.topic) or set()
        return {tp.partition for tp in consumer.assignment()} == partitions

    def _apply_due(self, consumer: KafkaConsumer) -> None:
        strict = self.strict(consumer)
        while True:
            released = self.sequencer.release(self.batch_size, strict)
            if not released:
                return
            offsets = self.sequencer.offsets()
            self._apply([m.event for m in released], [m.partition for m in released], offsets)
            self._commit(consumer, offsets)

    def _apply(
        self, events: Sequence[Recorded], partitions: Sequence[int], offsets: dict[int, Offsets]
    ) -> None:
        position = self.sequencer.frontier
        for store, stored in zip(self.stores, self._stored, strict=True):
            mine = [
                e
                for e, p in zip(events, partitions, strict=True)
                if p not in stored or e.position > stored[p].position
            ]
            batches: list[tuple[Projector, Sequence[Recorded]]] = [
                (projector, [e for e in mine if projector.wants(e.name)])
                for projector in store.projectors
            ]
            first, last = events[0].position, events[-1].position
            log.debug("applying positions %d..%d to %s", first, last, store.path)
            # A store ahead of the others on a partition (a crash between two stores'
            # commits) keeps its own position there.
            own = {
                p: Offsets(o.next_offset, o.resume_offset, max(o.position, stored[p].position))
                if p in stored
                else o
                for p, o in offsets.items()
            }
            store.apply(batches, max(position, store.low_position()), also=self._writer(own))
            stored.update(own)
            log.debug("committed position %d to %s", position, store.path)
        self.applied += len(events)

    def _writer(self, offsets: dict[int, Offsets]) -> Callable[[duckdb.DuckDBPyConnection], None]:
        def write(con: duckdb.DuckDBPyConnection) -> None:
            con.executemany(
                "INSERT OR REPLACE INTO kafka_offsets VALUES (?, ?, ?, ?, ?)",
                [
                    [self.target.topic, p, o.next_offset, o.resume_offset, o.position]
                    for p, o in offsets.items()
                ],
            )

        return write

    def _commit(self, consumer: KafkaConsumer, offsets: dict[int, Offsets]) -> None:
        """Tell Kafka too, for monitoring (lag per group); the stored offsets rule."""
        consumer.commit_async(
            {
                TopicPartition(self.target.topic, p): OffsetAndMetadata(o.next_offset, "", -1)
                for p, o in offsets.items()
            }
        )

    def lag(self) -> Lag:
        consumer = self._consumer
        if consumer is None:
            return Lag(0, 0, self.sequencer.held())
        read = end = 0
        for tp in consumer.assignment():
            position = consumer.position(tp) or 0
            # The high watermark of the last fetch (ListOffsets on Tansu reports the
            # start of the last record batch, not the end).
            highwater = consumer.highwater(tp)
            read += position
            end += max(position, highwater if highwater is not None else position + 1)
        return Lag(read, end, self.sequencer.held())

    def _offset_text(self) -> str:
        offsets = self.sequencer.offsets()
        return ", ".join(f"{p}:{o.next_offset}" for p, o in sorted(offsets.items()))

    # Rebalancing (called by the consumer inside poll)

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp in partitions:
            stored = [offsets.get(tp.partition) for offsets in self._stored]
            if all(o is not None for o in stored):
                offset = min(o.resume_offset for o in stored if o is not None)
                applied = min(o.position for o in stored if o is not None)
                consumer.seek(tp, offset)
            else:  # a store that never held this partition: from its beginning
                offset, applied = 0, 0
                consumer.seek_to_beginning(tp)
            self.sequencer.assign(tp.partition, offset, applied)
        log.debug("assigned partitions %s", sorted(tp.partition for tp in consumer.assignment()))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self.sequencer.revoke(tp.partition)
        log.debug("revoked partitions %s", sorted(tp.partition for tp in partitions))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.source.revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.source.assigned(assigned)
