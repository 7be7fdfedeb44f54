"""The relay: every stored event, in global order, to a Kafka topic (at least once).

Each event is one message: the :class:`~streaming.envelope.Envelope` as JSON, keyed
by its aggregate id (same key, same partition: one aggregate's events stay in order).
The producer waits for every replica (``acks=all``) and sends one request at a time
per connection, so a retried request cannot overtake the next one.

Events go out in batches. A batch is sent, flushed and every message of it
acknowledged before the next batch is read: when a batch starts, everything before
it is on the topic. Each message carries, in its headers, the first position of its
batch and the batch's size. The relay keeps no bookkeeping of its own: when it
starts it reads the tail of every partition back from the topic, finds the latest
batch and counts its messages. A complete batch resumes after its last position; a
batch cut short by a crash is sent again from its start (so the events of that one
batch may appear twice: at-least-once). Nothing is ever skipped.

While the broker is unreachable the relay retries with exponential backoff and logs
how many events it is behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventsourcing.persistence import ApplicationRecorder
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streaming.envelope import Envelope

log = logging.getLogger("crm.relay")

BATCH_FIRST = "crm-batch-first"
BATCH_COUNT = "crm-batch-count"
#: The position a batch was read after: every event up to it is in earlier batches
#: (consumers chain batches by it; positions may have gaps).
BATCH_AFTER = "crm-batch-after"

#: The largest batch: the relay reads back twice this many messages of each partition.
MAX_BATCH = 5_000

#: ``progress(position, head)`` after every acknowledged batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    bootstrap: str
    topic: str
    partitions: int = 3
    timeout_seconds: float = 10.0

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    def client_config(self) -> dict[str, object]:
        """What every client of the relay is given: the servers, and short waits, so
        that an unreachable broker is noticed (and logged) soon; the relay backs off."""
        timeout_ms = int(self.timeout_seconds * 1000)
        return {
            "bootstrap_servers": self.servers,
            "request_timeout_ms": timeout_ms,
            "bootstrap_timeout_ms": timeout_ms,
            "reconnect_backoff_max_ms": 1000,
        }


#: The producer's settings (besides the target's): every replica acknowledges, one
#: request in flight per connection, so a retried request cannot overtake the next.
PRODUCER_SETTINGS: dict[str, object] = {
    "acks": "all",
    "max_in_flight_requests_per_connection": 1,
    "retries": 5,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
}


def producer(target: KafkaTarget) -> KafkaProducer:
    """The relay's producer (``bench relay`` measures the raw client with the same)."""
    return KafkaProducer(**PRODUCER_SETTINGS, **target.client_config())


def batch_headers(first: int, count: int, after: int) -> list[tuple[str, bytes]]:
    """The headers of every message of a batch: its first position, its size, and the
    position it was read after (everything up to there was already acknowledged)."""
    return [
        (BATCH_FIRST, str(first).encode()),
        (BATCH_COUNT, str(count).encode()),
        (BATCH_AFTER, str(after).encode()),
    ]


@dataclass(frozen=True, slots=True)
class Page:
    """Events read after position ``after``, each as its message's key and value."""

    after: int
    first: int
    last: int
    messages: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Tail:
    """One message read back from the end of a partition."""

    position: int
    batch_first: int
    batch_count: int


def resume_position(tails: Sequence[Tail]) -> int:
    """The position after which publishing resumes, from the messages at the ends of
    the partitions: the last position of the latest batch if all of it is there, else
    the position before that batch (everything before a batch was acknowledged before
    it was sent)."""
    if not tails:
        return 0
    latest = max(t.batch_first for t in tails)
    batch = [t for t in tails if t.batch_first == latest]
    # A batch sent again after a crash starts at the same position; its page is the
    # first one's or longer (the store only grows), so the largest count is the page.
    count = max(t.batch_count for t in batch)
    if len({t.position for t in batch}) >= count:
        return max(t.position for t in batch)
    return latest - 1


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> int | None:
    for key, value in headers:
        if key == name:
            return int(value)
    return None


def read_tails(target: KafkaTarget) -> list[Tail]:
    """The last messages (up to ``2 * MAX_BATCH``) of every partition of the topic."""
    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **target.client_config())
    try:
        numbers = consumer.partitions_for_topic(target.topic) or set()
        partitions = [TopicPartition(target.topic, n) for n in sorted(numbers)]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        tails: list[Tail] = []
        for tp in partitions:
            end = ends[tp]
            if end == 0:
                continue
            consumer.seek(tp, max(0, end - 2 * MAX_BATCH))
            tails.extend(_read_to_end(consumer, tp, end))
            consumer.pause(tp)
        return tails
    finally:
        consumer.close()


def _read_to_end(consumer: KafkaConsumer, tp: TopicPartition, end: int) -> list[Tail]:
    """Read ``tp`` up to ``end``, and past it while more arrives (a broker may
    report the end of a partition as the start of its last record batch)."""
    tails: list[Tail] = []
    consumer.resume(tp)
    quiet = 0
    while quiet < 2:
        records = consumer.poll(timeout_ms=500).get(tp, [])
        if not records:
            quiet = quiet + 1 if consumer.position(tp) >= end else 0
            continue
        quiet = 0
        for record in records:
            first = _header(record.headers, BATCH_FIRST)
            count = _header(record.headers, BATCH_COUNT)
            if first is None or count is None:
                continue  # not published by the relay
            tails.append(Tail(Envelope.from_json(record.value).position, first, count))
    return tails


def ensure_topic(target: KafkaTarget) -> None:
    admin = KafkaAdminClient(**target.client_config())
    try:
        if target.topic in admin.list_topics():
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
            admin.create_topics([NewTopic(target.topic, target.partitions, 1)])
    finally:
        admin.close()


class Relay:
    """Publishes the store's events to ``target``; :meth:`run` catches up, then
    (unless ``once``) follows new events until :meth:`stop`."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        target: KafkaTarget,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        progress: Progress | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
        self.recorder = recorder
        self.target = target
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.progress = progress
        #: Every event up to here is acknowledged by the broker (None: not known yet).
        self.position: int | None = None
        self.published = 0
        #: The broker's last error while the relay retries; None while it answers.
        self.broker_error: str | None = None
        self._stopped = threading.Event()
        #: The next page, read and encoded while the broker acknowledged the last one.
        self._ahead: Page | None = None

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def stop(self) -> None:
        self._stopped.set()

    def run(self, once: bool = False) -> int:
        """Publish until caught up (``once``) or stopped; returns the position reached.
        A broker error closes the connection and starts again after a backoff, from
        the position read back from the topic."""
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                self._session(once)
                break
            except KafkaError as error:
                self.broker_error = str(error) or type(error).__name__
                lag = self.head() - (self.position or 0)
                log.warning(
                    "broker %s unavailable (%s); %d events behind; retrying in %.1f s",
                    self.target.bootstrap,
                    error,
                    lag,
                    backoff,
                )
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
        return self.position or 0

    def _session(self, once: bool) -> None:
        ensure_topic(self.target)
        self.position = resume_position(read_tails(self.target))
        self.broker_error = None
        log.info("resuming after position %d", self.position)
        if self.progress is not None:
            self.progress(self.position, max(self.position, self.head()))
        client = producer(self.target)
        try:
            stop = self.head() if once else None
            while not self._stopped.is_set():
                sent = self._publish_batch(client, stop)
                if sent:
                    continue
                if once:
                    return
                self._stopped.wait(self.poll_seconds)
        finally:
            client.close(timeout=5)

    def _read(self, after: int, stop: int | None) -> Page | None:
        notifications = self.recorder.select_notifications(
            start=after, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        if not notifications:
            return None
        messages = []
        for notification in notifications:
            envelope = Envelope.from_notification(notification)
            messages.append((envelope.key, envelope.to_json()))
        return Page(after, notifications[0].id, notifications[-1].id, messages)

    def _publish_batch(self, client: KafkaProducer, stop: int | None) -> int:
        start = self.position or 0
        if stop is not None and start >= stop:
            return 0
        ahead, self._ahead = self._ahead, None
        page = ahead if ahead is not None and ahead.after == start else self._read(start, stop)
        if page is None:
            return 0
        headers = batch_headers(page.first, len(page.messages), after=start)
        futures = [
            client.send(self.target.topic, key=key, value=value, headers=headers)
            for key, value in page.messages
        ]
        # While the broker acknowledges this batch, read and encode the next one. It is
        # sent only once this one is acknowledged (everything before a batch is on the
        # topic when it starts): reading ahead only keeps the broker from waiting on us.
        if stop is None or page.last < stop:
            self._ahead = self._read(page.last, stop)
        client.flush(timeout=self.target.timeout_seconds)
        for future in futures:
            future.get(timeout=self.target.timeout_seconds)  # raises the broker's error
        self.position = page.last
        self.published += len(page.messages)
        log.debug("acknowledged positions %d..%d", page.first, self.position)
        if self.progress is not None:
            self.progress(self.position, max(self.position, stop or self.head()))
        return len(page.messages)
