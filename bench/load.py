"""Closed-loop HTTP load: ``clients`` concurrent workers, each sending its next request as
soon as the previous reply is in, for a fixed time; latency per request, statuses per
command.

Two client implementations with one interface: ``raw`` (HTTP/1.1 over asyncio streams,
one keep-alive connection per worker, on uvloop when installed) and ``httpx``
(an ``httpx.AsyncClient`` with a pool of ``clients`` keep-alive connections). The raw
client costs the load generator several times less CPU per request, which matters on a
small machine where the load generator and the server share the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import httpx

from bench.common import BenchError, Latency, one_line

ClientKind = Literal["raw", "httpx"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("raw", "httpx")
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One request of a workload. ``label`` groups the figures (e.g. ``move-deal``);
    ``on_success`` lets the workload learn from a 2xx reply (e.g. a deal's new stage)."""

    label: str
    method: str
    path: str
    body: bytes | None = None
    token: str | None = None
    on_success: Callable[[bytes], None] | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


class Connection(Protocol):
    async def send(self, request: Request) -> Reply: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- raw HTTP/1.1


class RawConnection:
    """One keep-alive HTTP/1.1 connection; reconnects after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> Reply:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        try:
            writer.write(self._encode(request))
            head = await reader.readuntil(b"\r\n\r\n")
            status, length, chunked, close = _parse_head(head)
            body = await _read_chunked(reader) if chunked else await reader.readexactly(length)
        except BaseException:
            # A connection in an unknown state is never reused.
            await self.aclose()
            raise
        if close:
            await self.aclose()
        return Reply(status, body)

    def _encode(self, request: Request) -> bytes:
        lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if request.token is not None:
            lines.append(f"Authorization: Bearer {request.token}")
        body = request.body or b""
        if request.body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """Status, content length, chunked?, connection: close? of a response head."""
    status_line, *header_lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise BenchError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    length, chunked, close = 0, False, parts[0] == b"HTTP/1.0"
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    return int(parts[1]), length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from our server
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


# ---------------------------------------------------------------- httpx


class HttpxConnection:
    """A worker's view of one shared ``httpx.AsyncClient`` (the pool is the client's)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, request: Request) -> Reply:
        headers = {}
        if request.token is not None:
            headers["Authorization"] = f"Bearer {request.token}"
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.request(
            request.method, request.path, content=request.body, headers=headers
        )
        return Reply(response.status_code, response.content)

    async def aclose(self) -> None:
        """The shared client is closed by its owner."""


class Clients:
    """Makes a connection per worker of the chosen kind; closes what it made."""

    def __init__(self, kind: ClientKind, host: str, port: int, pool_size: int) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self._shared: httpx.AsyncClient | None = None
        if kind == "httpx":
            self._shared = httpx.AsyncClient(
                base_url=f"http://{host}:{port}",
                limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
                timeout=httpx.Timeout(60.0),
            )

    def connect(self) -> Connection:
        if self._shared is not None:
            return HttpxConnection(self._shared)
        return RawConnection(self.host, self.port)

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()


# ---------------------------------------------------------------- tallies


@dataclass
class Tally:
    """What happened to the requests with one label."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.latencies.extend(other.latencies)
        self.statuses.update(other.statuses)
        self.exceptions.update(other.exceptions)
        self.samples.extend(other.samples[: max(0, 5 - len(self.samples))])

    @property
    def replies(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def failures(self, expected: Iterable[int] = ()) -> int:
        """Non-2xx replies other than ``expected`` ones, plus requests that got no reply."""
        allowed = set(expected)
        unexpected = sum(
            n
            for status, n in self.statuses.items()
            if not 200 <= status < 300 and status not in allowed
        )
        return unexpected + sum(self.exceptions.values())

    def latency(self) -> Latency:
        return Latency.of(self.latencies)


@dataclass
class Run:
    """One timed run: tallies by label and the wall time it took."""

    elapsed: float
    by_label: dict[str, Tally]

    def total(self) -> Tally:
        total = Tally()
        for tally in self.by_label.values():
            total.merge(tally)
        return total


# ---------------------------------------------------------------- the driver


class Workload(Protocol):
    def next(self, worker: int) -> Request: ...


async def drive(
    clients: Clients,
    workload: Workload,
    concurrency: int,
    duration: float,
    request_timeout: float = 30.0,
    tick: Callable[[float, int], None] | None = None,
) -> Run:
    """Run ``concurrency`` workers for ``duration`` seconds; ``tick(elapsed, replies)``
    is called about four times a second (progress)."""
    tallies: dict[str, Tally] = {}
    replies = 0
    start = time.perf_counter()
    deadline = start + duration

    async def worker(index: int) -> None:
        nonlocal replies
        connection = clients.connect()
        try:
            while time.perf_counter() < deadline:
                request = workload.next(index)
                tally = tallies.get(request.label) or tallies.setdefault(request.label, Tally())
                sent = time.perf_counter()
                try:
                    async with asyncio.timeout(request_timeout):
                        reply = await connection.send(request)
                except (OSError, EOFError, TimeoutError, BenchError, httpx.HTTPError) as error:
                    tally.exceptions[type(error).__name__] += 1
                    if len(tally.samples) < 5:
                        tally.samples.append(f"{type(error).__name__}: {one_line(error)}")
                    await asyncio.sleep(0.05)  # a refused connection must not spin
                    continue
                tally.latencies.append(time.perf_counter() - sent)
                tally.statuses[reply.status] += 1
                replies += 1
                if 200 <= reply.status < 300:
                    if request.on_success is not None:
                        request.on_success(reply.body)
                elif reply.status != 409 and len(tally.samples) < 5:
                    text = reply.body[:300].decode(errors="replace")
                    tally.samples.append(f"{reply.status}: {text}")
        finally:
            await connection.aclose()

    async def ticker() -> None:
        while tick is not None:
            tick(time.perf_counter() - start, replies)
            await asyncio.sleep(0.25)

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        ticking.cancel()
    return Run(elapsed=time.perf_counter() - start, by_label=tallies)


async def send_all(
    clients: Clients,
    requests: Sequence[Request],
    concurrency: int,
    done: Callable[[int], None] | None = None,
) -> list[Reply]:
    """Send ``requests`` (set-up, not measured) with bounded concurrency; every one must
    succeed. Replies come back in request order; ``done(n)`` reports progress."""
    replies: list[Reply | None] = [None] * len(requests)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(requests)):
        queue.put_nowait(index)
    finished = 0

    async def worker() -> None:
        nonlocal finished
        connection = clients.connect()
        try:
            while not queue.empty():
                index = queue.get_nowait()
                request = requests[index]
                reply = await connection.send(request)
                if not 200 <= reply.status < 300:
                    raise BenchError(
                        f"set-up request {request.method} {request.path} got {reply.status}: "
                        f"{reply.body[:300].decode(errors='replace')}"
                    )
                replies[index] = reply
                finished += 1
                if done is not None:
                    done(finished)
        finally:
            await connection.aclose()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(requests))))))
    return [reply for reply in replies if reply is not None]


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on uvloop when installed (a cheaper load generator), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


__all__ = [
    "CLIENT_KINDS",
    "ClientKind",
    "Clients",
    "Reply",
    "Request",
    "Run",
    "Tally",
    "drive",
    "run_async",
    "send_all",
]
