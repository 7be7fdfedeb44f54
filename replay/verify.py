"""``crm verify``: check every stored event against the hash chain, and signed checkpoints.

The walk reads the events and the chain (``commands/chain.py``) side by side in
position order, in one read transaction (a consistent snapshot while writers go on),
recomputes each event's digest and link from the bytes stored, and stops at the first
problem, which it names:

- **altered**: the event's bytes differ from what was recorded at its position;
- **reordered**: the event at a position is one recorded at another position;
- **removed**: a position the chain recorded holds no event (or its link is gone too:
  the next link says which position it followed);
- **inserted**: an event the chain never recorded (written behind the store's back);
- **truncated**: the chain records events after the last one stored;
- **chain altered**: a link that does not follow from the events before it.

Whoever can write to the database can also rewrite the whole chain consistently. A
*checkpoint* defeats that: the link at a position, signed with an Ed25519 key the
database never sees (:func:`write_checkpoint`). :func:`verify` with a checkpoint
recomputes the chain from the events alone and proves that history up to the
checkpoint is what it was when signed (else: **rewritten** or **truncated**).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import multiprocessing
import os
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any, Literal, NamedTuple, Protocol
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from eventsourcing.persistence import (
    ApplicationRecorder,
    EventStore,
    InfrastructureFactory,
    TrackingRecorder,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteApplicationRecorder
from eventsourcing.utils import Environment
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from domain.integrity import (
    EVENT_HEAD,
    GENESIS,
    LINK_HEAD,
    STATE_SIZE,
    chain_table_name,
    link_of,
    raw_digest,
)

#: Rows fetched per read of the store.
PAGE = 20_000

#: Called with (events checked so far, events in the store).
Progress = Callable[[int, int], None]

ProblemKind = Literal[
    "altered",
    "reordered",
    "removed",
    "inserted",
    "truncated",
    "chain altered",
    "rewritten",
    "snapshot altered",
]

#: (position, record id in hex, version, topic, state) as stored; any column may have
#: been edited into another type (SQLite keeps whatever it is given).
RawEvent = tuple[Any, ...]
#: (position, previous, digest, link)
ChainRow = tuple[int, int, bytes, bytes]


class VerifyError(Exception):
    """The store or a checkpoint cannot be checked (not a finding about the history)."""


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    position: int
    message: str


@dataclass(frozen=True)
class Verified:
    """What a walk found: OK up to ``position`` (``head`` is the link there), or the
    first problem."""

    events: int
    position: int
    head: bytes
    seconds: float
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Checkpoint:
    """The chain's link at ``position`` after ``events`` events, signed."""

    position: int
    events: int
    head: bytes
    created_at: str
    public_key: bytes
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": "chronicle-crm-checkpoint/1",
                "position": self.position,
                "events": self.events,
                "head": self.head.hex(),
                "created_at": self.created_at,
                "public_key": base64.b64encode(self.public_key).decode(),
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def to_json(self) -> bytes:
        document = orjson.loads(self.signed_bytes())
        document["signature"] = base64.b64encode(self.signature).decode()
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Checkpoint:
        try:
            document: dict[str, Any] = orjson.loads(data)
            if document.get("format") != "chronicle-crm-checkpoint/1":
                raise ValueError("not a Chronicle CRM checkpoint")
            return cls(
                position=int(document["position"]),
                events=int(document["events"]),
                head=bytes.fromhex(document["head"]),
                created_at=str(document["created_at"]),
                public_key=base64.b64decode(document["public_key"], validate=True),
                signature=base64.b64decode(document["signature"], validate=True),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise VerifyError(f"{source} is not a readable checkpoint ({error})") from None


# --- keys --------------------------------------------------------------------------


def generate_key(path: Path) -> Ed25519PublicKey:
    """Write a new Ed25519 private key (PEM, readable by its owner only) to ``path``,
    which must not exist (created exclusively, mode 600 from the start)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VerifyError(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key.public_key()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise VerifyError(f"cannot read the signing key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VerifyError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key's file gives its public key)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise VerifyError(f"cannot read the key {path}: {error}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise VerifyError(f"cannot read the public key {path}: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VerifyError(f"{path} is not an Ed25519 public key")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def sign_checkpoint(verified: Verified, key: Ed25519PrivateKey) -> Checkpoint:
    """A checkpoint of a clean walk's head, signed with ``key``."""
    if not verified.ok:
        raise VerifyError("only a store that verifies OK can be checkpointed")
    unsigned = Checkpoint(
        position=verified.position,
        events=verified.events,
        head=verified.head,
        created_at=datetime.now(UTC).isoformat(),
        public_key=raw_public(key.public_key()),
    )
    signature = key.sign(unsigned.signed_bytes())
    return Checkpoint(**{**vars(unsigned), "signature": signature})


def read_checkpoint(path: Path, key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint in ``path``, once its signature is proven to be ``key``'s."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise VerifyError(f"cannot read the checkpoint {path}: {error}") from None
    checkpoint = Checkpoint.from_json(data, str(path))
    if checkpoint.public_key != raw_public(key):
        raise VerifyError(f"{path} was signed with another key than the one configured")
    try:
        key.verify(checkpoint.signature, checkpoint.signed_bytes())
    except InvalidSignature:
        raise VerifyError(f"{path}: the signature does not match its content (forged)") from None
    return checkpoint


# --- the walk ----------------------------------------------------------------------


def verify(
    recorder: ApplicationRecorder,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    store: StoreAddress | None = None,
    workers: int = 1,
) -> Verified:
    """Walk the whole store against its chain (and ``checkpoint``, when given).

    Given where the store is (``store``) and ``workers`` > 1, a large store is cut into
    that many ranges of positions walked side by side, each in a process of its own
    (hashing is CPU work): the stored link before a range is where its walk starts, and
    the walk of the range before proves that link.
    """
    started = perf_counter()
    with _Reading(recorder) as (whole, events, chain):
        if store is None or workers <= 1 or whole.hi < PARALLEL_FROM:
            verified = _walk(whole, events, chain, checkpoint, progress, recorder)
            return replace(verified, seconds=perf_counter() - started)
    verified = _walk_in_parallel(recorder, store, whole.hi, workers, checkpoint, progress)
    return replace(verified, seconds=perf_counter() - started)


class StoreAddress(NamedTuple):
    """How another process opens the same store: eventsourcing's environment (e.g.
    ``commands.app.store_env``) of the application named ``name``."""

    name: str
    env: Mapping[str, str]


#: Below this many positions a store is walked in one process.
PARALLEL_FROM = 100_000

#: Events walked so far by each worker process (set by :func:`_worker_init`).
_walked: Any = None


def _walk_in_parallel(
    recorder: ApplicationRecorder,
    store: StoreAddress,
    hi: int,
    workers: int,
    checkpoint: Checkpoint | None,
    progress: Progress | None,
) -> Verified:
    cuts = [1 + hi * k // workers for k in range(workers)] + [hi + 1]
    ranges = list(itertools.pairwise(cuts))

    def checkpoint_of(index: int) -> Checkpoint | None:
        if checkpoint is None:
            return None
        lo, stop = ranges[index]
        last_range = index == len(ranges) - 1
        return (
            checkpoint
            if lo <= checkpoint.position < stop or (last_range and checkpoint.position >= stop)
            else None
        )

    context = multiprocessing.get_context("spawn")
    walked = context.Array("q", len(ranges))
    total = hi
    with ProcessPoolExecutor(
        max_workers=len(ranges) - 1,
        mp_context=context,
        initializer=_worker_init,
        initargs=(walked,),
    ) as pool:
        others = [
            pool.submit(_walk_range, store.name, dict(store.env), i, lo, stop - 1, checkpoint_of(i))
            for i, (lo, stop) in enumerate(ranges)
            if i > 0
        ]

        def mine(done: int, _: int) -> None:
            walked[0] = done
            if progress is not None:
                progress(sum(walked[:]), total)

        _, stop = ranges[0]
        with _Reading(recorder, None, stop - 1) as (bounds, events, chain):
            results = [_walk(bounds, events, chain, checkpoint_of(0), mine, recorder)]
        walked[0] = results[0].events
        while not all(f.done() for f in others):
            if progress is not None:
                progress(sum(walked[:]), total)
            futures_wait(others, timeout=0.25)
        try:
            results += [f.result() for f in others]
        except BrokenProcessPool as error:
            raise VerifyError(f"a process walking the store died: {error}") from None
    count = 0
    for verified in results:
        if verified.problem is not None:
            return replace(verified, events=count + verified.events)
        count += verified.events
    if progress is not None:
        progress(count, total)
    return replace(results[-1], events=count)


def _worker_init(walked: Any) -> None:
    global _walked
    _walked = walked


def _walk_range(
    name: str,
    env: dict[str, str],
    index: int,
    lo: int,
    hi: int,
    checkpoint: Checkpoint | None,
) -> Verified:
    """One range, walked in a worker process on a store of its own opening."""
    factory = InfrastructureFactory[TrackingRecorder].construct(Environment(name, env))
    try:
        recorder = factory.application_recorder()

        def report(done: int, _: int) -> None:
            _walked[index] = done

        with _Reading(recorder, lo, hi) as (bounds, events, chain):
            verified = _walk(bounds, events, chain, checkpoint, report, recorder)
        _walked[index] = verified.events
        return verified
    finally:
        factory.close()


class _Walk:
    """Where a walk stands: the link and position of the last event proven, and how
    many events were."""

    def __init__(self, checkpoint: Checkpoint | None, recorder: ApplicationRecorder) -> None:
        self.link = GENESIS
        self.last = 0
        self.count = 0
        self.checkpoint = checkpoint
        self.recorder = recorder

    def found(self, kind: ProblemKind, position: int, message: str) -> Verified:
        return Verified(self.count, self.last, self.link, 0.0, Problem(kind, position, message))

    def beyond_checkpoint(self, position: int, link: bytes) -> Verified | None:
        """At or past the checkpoint's position: the link there must be the one signed."""
        checkpoint = self.checkpoint
        if checkpoint is None or position < checkpoint.position:
            return None
        if position > checkpoint.position or link != checkpoint.head:
            return self.found(
                "rewritten",
                min(position, checkpoint.position),
                f"the history up to position {checkpoint.position} is not the one "
                f"checkpointed on {checkpoint.created_at}: it was rewritten "
                "(events and chain recomputed)",
            )
        self.checkpoint = None  # proven
        return None

    def step(
        self, event: RawEvent | None, row: ChainRow | None, rest: Iterator[ChainRow]
    ) -> Verified | None:
        """Check one event against one chain row, diagnosing whatever does not match;
        None when they match (the walk then stands on this event), else the problem."""
        if row is None or (event is not None and event[0] < row[0]):
            assert event is not None
            return self.found(
                "inserted",
                event[0],
                f"position {event[0]}: {_describe(event)} is not in the hash chain: "
                "it was inserted behind the store's back",
            )
        if event is None or row[0] < event[0]:
            if event is None:
                missing = 1 + sum(1 for _ in rest)
                return self.found(
                    "truncated",
                    row[0],
                    f"the history was truncated after position {self.last}: the chain records "
                    f"{missing} more event(s), from position {row[0]}, that are not in the store",
                )
            return self.found(
                "removed", row[0], f"position {row[0]}: the event recorded there was removed"
            )
        position, record, version, topic, state = event
        _, previous, digest, stored_link = row
        if previous != self.last:
            if previous > self.last:
                return self.found(
                    "removed",
                    previous,
                    f"position {previous}: the event recorded there was removed "
                    f"(with its link; position {position} follows it in the chain)",
                )
            return self.found(
                "chain altered",
                position,
                f"position {position}: its link says it follows position {previous}, "
                f"but the event before it is at position {self.last}",
            )
        actual = _digest_as_read(record, version, topic, state)
        if actual != bytes(digest):
            origin = _recorded_at(self.recorder, actual)
            if origin is not None and origin != position:
                return self.found(
                    "reordered",
                    position,
                    f"position {position}: {_describe(event)} was recorded at position "
                    f"{origin}: events were reordered",
                )
            return self.found(
                "altered",
                position,
                f"position {position}: {_describe(event)} was altered: its bytes differ "
                "from what was recorded",
            )
        link = link_of(self.link, position, self.last, actual)  # from the events alone
        if link != bytes(stored_link):
            return self.found(
                "chain altered",
                position,
                f"position {position}: the chain's link was altered (the event is intact)",
            )
        problem = self.beyond_checkpoint(position, link)
        if problem is not None:
            return problem
        self.link, self.last = link, position
        self.count += 1
        return None


def _walk(
    bounds: _Range,
    events: Iterator[RawEvent],
    chain: Iterator[ChainRow],
    checkpoint: Checkpoint | None,
    progress: Progress | None,
    recorder: ApplicationRecorder,
) -> Verified:
    """Walk one range of positions (:class:`_Range`) from where the chain stands before it."""
    total = bounds.hi - bounds.lo + 1
    walk = _Walk(checkpoint, recorder)
    walk.link, walk.last = bounds.link, bounds.last
    # The fast path: as long as every event matches its link, with nothing but hashing
    # per event (:meth:`_Walk.step` says what went wrong, from the first mismatch).
    sha256 = hashlib.sha256
    fromhex = bytes.fromhex
    event_head = EVENT_HEAD.pack
    state_size = STATE_SIZE.pack
    link_head = LINK_HEAD.pack
    link, last, count = bounds.link, bounds.last, 0
    # Every event from the checkpoint's position on goes through step() until proven.
    checkpoint_at = checkpoint.position if checkpoint is not None else sys.maxsize
    next_report = PAGE
    for event in events:
        row = next(chain, None)
        try:
            position, record, version, topic, state = event
            if row is None or row[0] != position or row[1] != last:
                raise LookupError
            record_bytes = fromhex(record)
            if record_bytes.hex() != record or type(state) is not bytes:
                raise LookupError  # not as written: step() says so
            topic_bytes = topic.encode()
            actual = sha256(
                record_bytes
                + event_head(version, len(topic_bytes))
                + topic_bytes
                + state_size(len(state))
                + state
            ).digest()
            following = sha256(link + link_head(position, last) + actual).digest()
            if actual != row[2] or following != row[3] or position >= checkpoint_at:
                raise LookupError
        except Exception:
            walk.link, walk.last, walk.count = link, last, count
            problem = walk.step(event, row, chain)
            if problem is not None:
                return problem
            link, last, count = walk.link, walk.last, walk.count
            if walk.checkpoint is None:
                checkpoint_at = sys.maxsize
            continue
        link, last = following, position
        count += 1
        if count >= next_report:
            next_report += PAGE
            if progress is not None:
                progress(count, total)
    walk.link, walk.last, walk.count = link, last, count
    row = next(chain, None)
    if row is not None:
        problem = walk.step(None, row, chain)
        if problem is not None:
            return problem
    if walk.checkpoint is not None and walk.checkpoint.position > last:
        cp = walk.checkpoint
        return walk.found(
            "truncated",
            last,
            f"the history was truncated: the checkpoint of {cp.created_at} covers "
            f"{cp.events} events up to position {cp.position}, the store "
            f"ends at position {last} with {count}",
        )
    if progress is not None:
        progress(count, total)
    return Verified(count, last, link, 0.0)


def _describe(event: RawEvent) -> str:
    _, record, version, topic, _ = event
    name = str(topic).rpartition(":")[2] or str(topic)
    return f"{name} of record {record} v{version}"


# --- reading the store -------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    """Positions ``lo``..``hi`` of a store, and where the chain stands before them (the
    last link recorded before ``lo``: the walk of the range before proves it)."""

    lo: int
    hi: int
    last: int
    link: bytes


class _Reading:
    """The events and the chain rows of one range of positions, each in position order,
    in one read transaction."""

    def __init__(
        self, recorder: ApplicationRecorder, lo: int | None = None, hi: int | None = None
    ) -> None:
        """``lo`` None: from the very first row, whatever its position (an event edited
        in at position 0 or below is read, and found inserted)."""
        self.recorder = recorder
        self.lo = lo
        self.hi = hi
        self._close: Callable[[], object] = lambda: None

    def __enter__(self) -> tuple[_Range, Iterator[RawEvent], Iterator[ChainRow]]:
        recorder = self.recorder
        try:
            if isinstance(recorder, SQLiteApplicationRecorder):
                return self._sqlite(recorder)
            if isinstance(recorder, PostgresApplicationRecorder):
                return self._postgres(recorder)
        except BaseException:
            self._close()  # the read transaction begun, if any
            raise
        raise VerifyError(f"cannot verify a store kept by {type(recorder).__name__}")

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _sqlite(
        self, recorder: SQLiteApplicationRecorder
    ) -> tuple[_Range, Iterator[RawEvent], Iterator[ChainRow]]:
        events_table = recorder.events_table_name
        chain = chain_table_name(events_table)
        context = recorder.datastore.transaction(commit=False)
        cursor = context.__enter__()
        self._close = lambda: context.__exit__(None, None, None)
        raw = cursor.sqlite_cursor
        raw.row_factory = None
        second = raw.connection.cursor()
        second.row_factory = None
        _require_chain_sqlite(second, chain)
        hi = self.hi
        if hi is None:
            raw.execute(
                # SQLite's max() of a NULL is NULL: an empty chain must not hide events.
                f"SELECT max(coalesce((SELECT max(rowid) FROM {events_table}), 0), "
                f"coalesce((SELECT max(position) FROM {chain}), 0))"
            )
            hi = int(raw.fetchone()[0] or 0)
        before = None
        if self.lo is not None:
            raw.execute(
                f"SELECT position, link FROM {chain} WHERE position < ? "
                "ORDER BY position DESC LIMIT 1",
                [self.lo],
            )
            before = raw.fetchone()
        lo = self.lo if self.lo is not None else -(2**63)
        bounds = _Range(
            self.lo or 1, hi, *((int(before[0]), bytes(before[1])) if before else (0, GENESIS))
        )
        raw.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {events_table} WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
            [lo, hi],
        )
        second.execute(
            f"SELECT position, previous, digest, link FROM {chain} "
            "WHERE position BETWEEN ? AND ? ORDER BY position",
            [lo, hi],
        )
        return bounds, _flat(raw.fetchmany), _flat(second.fetchmany)

    def _postgres(
        self, recorder: PostgresApplicationRecorder
    ) -> tuple[_Range, Iterator[RawEvent], Iterator[ChainRow]]:
        datastore = recorder.datastore
        schema = Identifier(datastore.schema)
        events_table = Identifier(recorder.events_table_name)
        chain = Identifier(chain_table_name(recorder.events_table_name))
        context = datastore.get_connection()
        conn = context.__enter__()
        transaction = conn.transaction()
        transaction.__enter__()

        def close() -> None:
            try:
                transaction.__exit__(None, None, None)
            finally:
                context.__exit__(None, None, None)

        self._close = close
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        exists = conn.execute(
            "SELECT to_regclass(%s) AS chain",
            [f"{datastore.schema}.{chain_table_name(recorder.events_table_name)}"],
        ).fetchone()
        if exists is None or exists["chain"] is None:
            raise VerifyError("this store has no hash chain table: it was never written by crm")
        hi = self.hi
        if hi is None:
            found = conn.execute(
                SQL(
                    "SELECT greatest((SELECT max(notification_id) FROM {}.{}), "
                    "(SELECT max(position) FROM {}.{})) AS hi"
                ).format(schema, events_table, schema, chain)
            ).fetchone()
            hi = int(found["hi"] or 0) if found is not None else 0
        before = None
        if self.lo is not None:
            before = conn.execute(
                SQL(
                    "SELECT position, link FROM {}.{} WHERE position < %s "
                    "ORDER BY position DESC LIMIT 1"
                ).format(schema, chain),
                [self.lo],
            ).fetchone()
        lo = self.lo if self.lo is not None else -(2**63)
        bounds = _Range(
            self.lo or 1,
            hi,
            *((int(before["position"]), bytes(before["link"])) if before else (0, GENESIS)),
        )
        event_cursor = conn.cursor(name="crm_verify_events", row_factory=tuple_row)
        event_cursor.execute(
            SQL(
                "SELECT notification_id, replace(originator_id::text, '-', ''), "
                "originator_version, topic, state FROM {}.{} "
                "WHERE notification_id BETWEEN %s AND %s ORDER BY notification_id"
            ).format(schema, events_table),
            [lo, hi],
        )
        chain_cursor = conn.cursor(name="crm_verify_chain", row_factory=tuple_row)
        chain_cursor.execute(
            SQL(
                "SELECT position, previous, digest, link FROM {}.{} "
                "WHERE position BETWEEN %s AND %s ORDER BY position"
            ).format(schema, chain),
            [lo, hi],
        )
        return bounds, _flat(event_cursor.fetchmany), _flat(chain_cursor.fetchmany)


def _digest_as_read(record: object, version: object, topic: object, state: object) -> bytes:
    """The digest of an event's columns exactly as the store hands them to eventsourcing,
    or ``b""`` (which matches no digest) when any is not in the form the store writes
    it: an id edited into another spelling (SQLite keeps hex text and compares it
    as text: ``ABC…`` is another record to the library), a version or state turned into
    text (SQLite keeps whatever type it is given)."""
    if not (
        isinstance(record, str)
        and type(version) is int
        and isinstance(topic, str)
        and type(state) is bytes
    ):
        return b""
    try:
        record_bytes = bytes.fromhex(record)
    except ValueError:
        return b""
    if len(record_bytes) != 16 or record_bytes.hex() != record:
        return b""
    try:
        return raw_digest(record_bytes, version, topic, state)
    except (OverflowError, struct.error):
        return b""


def _flat(fetchmany: Callable[[int], list[Any]]) -> Iterator[Any]:
    """The rows of a cursor, fetched a page at a time."""

    def pages() -> Iterator[list[Any]]:
        while rows := fetchmany(PAGE):
            yield rows

    return itertools.chain.from_iterable(pages())


def _require_chain_sqlite(cursor: Any, chain: str) -> None:
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [chain])
    if cursor.fetchone() is None:
        raise VerifyError("this store has no hash chain table: it was never written by crm")


def _recorded_at(recorder: ApplicationRecorder, digest: bytes) -> int | None:
    """The position at which the chain recorded an event with this digest, if any."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        table = chain_table_name(recorder.events_table_name)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT position FROM {table} WHERE digest = ?", [digest])
            row = cursor.fetchone()
            return None if row is None else int(row[0])
    if isinstance(recorder, PostgresApplicationRecorder):
        statement = SQL("SELECT position FROM {}.{} WHERE digest = %s").format(
            Identifier(recorder.datastore.schema),
            Identifier(chain_table_name(recorder.events_table_name)),
        )
        with recorder.datastore.get_connection() as conn:
            found = conn.execute(statement, [digest]).fetchone()
            return None if found is None else int(found["position"])
    return None


# --- snapshots ---------------------------------------------------------------------


class SnapshotSource(Protocol):
    """What checking snapshots needs of the application (``commands.app.Crm`` is one)."""

    @property
    def events(self) -> EventStore[UUID]: ...

    @property
    def snapshots(self) -> EventStore[UUID] | None: ...


@dataclass(frozen=True)
class SnapshotsVerified:
    records: int
    snapshots: int
    seconds: float
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_snapshots(app: SnapshotSource, progress: Progress | None = None) -> SnapshotsVerified:
    """Check every snapshot against the record folded from its events alone.

    Snapshots are a cache outside the chain, written after their events' commit; a
    record loads from its latest one. So one edited in the database would change what
    the record reads as, at that version and after, while every event still verifies:
    here each record with snapshots is replayed from its (verified) events, and each
    snapshot must equal the record at its version. This decodes every such event: run
    it after :func:`verify`, which proves the events themselves.
    """
    started = perf_counter()
    store = app.snapshots
    if store is None:
        return SnapshotsVerified(0, 0, perf_counter() - started)
    records = _snapshotted_records(store.recorder)
    checked = 0
    for done, record_id in enumerate(records, start=1):
        try:
            snapshots = list(store.get(record_id))
        except Exception as error:  # JSON or a topic edited into something unreadable
            return SnapshotsVerified(
                done - 1,
                checked,
                perf_counter() - started,
                Problem("snapshot altered", 0, f"the snapshots of {record_id} are unreadable "
                        f"({type(error).__name__}: {error})"),
            )  # fmt: skip
        wanted = {snapshot.originator_version: snapshot for snapshot in snapshots}
        aggregate: Any = None
        for event in app.events.get(record_id):
            aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
            snapshot = wanted.pop(event.originator_version, None)
            if snapshot is None:
                continue
            checked += 1
            if _state(snapshot.mutate(None)) != _state(aggregate):  # type: ignore[attr-defined]
                return SnapshotsVerified(
                    done - 1,
                    checked,
                    perf_counter() - started,
                    Problem(
                        "snapshot altered",
                        event.originator_version,
                        f"the snapshot of record {record_id} at version "
                        f"{event.originator_version} differs from the record its events make",
                    ),
                )
        if wanted:
            version = min(wanted)
            return SnapshotsVerified(
                done - 1,
                checked,
                perf_counter() - started,
                Problem(
                    "snapshot altered",
                    version,
                    f"record {record_id} has a snapshot at version {version}, which none of "
                    "its events reaches: forged",
                ),
            )
        if progress is not None:
            progress(done, len(records))
    return SnapshotsVerified(len(records), checked, perf_counter() - started)


def _state(aggregate: object) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def _snapshotted_records(recorder: object) -> list[UUID]:
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT DISTINCT originator_id FROM {recorder.events_table_name} "
                "ORDER BY originator_id"
            )
            return [UUID(str(row[0])) for row in cursor.fetchall()]
    if isinstance(recorder, PostgresAggregateRecorder):
        statement = SQL("SELECT DISTINCT originator_id FROM {}.{} ORDER BY 1").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        with recorder.datastore.get_connection() as conn:
            return [UUID(str(row["originator_id"])) for row in conn.execute(statement)]
    raise VerifyError(f"cannot list the snapshots kept by {type(recorder).__name__}")
