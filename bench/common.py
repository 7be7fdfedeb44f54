"""What every benchmark shares: latency statistics, the results table, the JSON file,
a real ``crm serve`` in its own process, a throw-away PostgreSQL database, CPU meters
and a progress bar.

A benchmark measures its baseline in the same run as its subject, on the same
machine and the same server, and reports the subject as a ratio of it: absolute
numbers from a 2-core laptop and a 64-core server are not comparable, ratios mostly are.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_ENV = "CRM_BENCH_POSTGRES_URL"

#: Tables go to stdout; progress and messages to stderr, so stdout stays pasteable.
#: Piped or redirected, stdout gets a width that fits a table instead of rich's 80.
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, soft_wrap=True)


class BenchError(Exception):
    """Raised when a benchmark cannot run; its message is one line for the user."""


class ServiceUnavailableError(BenchError):
    """Raised when a service a benchmark needs (PostgreSQL) is not reachable."""


# ---------------------------------------------------------------- statistics


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of already sorted values, interpolating linearly
    between the closest ranks (numpy's default); NaN for no values."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Latency:
    """Latency figures in milliseconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        ms = 1000.0
        return cls(
            count=len(ordered),
            mean=(sum(ordered) / len(ordered) * ms) if ordered else math.nan,
            p50=percentile(ordered, 50) * ms,
            p90=percentile(ordered, 90) * ms,
            p99=percentile(ordered, 99) * ms,
            max=(ordered[-1] * ms) if ordered else math.nan,
        )

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean_ms": _finite(self.mean),
            "p50_ms": _finite(self.p50),
            "p90_ms": _finite(self.p90),
            "p99_ms": _finite(self.p99),
            "max_ms": _finite(self.max),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


# ---------------------------------------------------------------- table and formats


def new_table(title: str, columns: Sequence[str], caption: str | None = None) -> Table:
    """A results table; every column after the first is right-aligned (figures)."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    return table


def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_rate(per_second: float) -> str:
    return "-" if math.isnan(per_second) else f"{per_second:,.0f}"


def fmt_ms(ms: float) -> str:
    if math.isnan(ms):
        return "-"
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_ratio(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 and not math.isnan(baseline) else math.nan


# ---------------------------------------------------------------- options


def csv_choices(
    allowed: Sequence[str], everything: str | None = None
) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names out of ``allowed`` (``everything``: all)."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if everything is not None and names == [everything]:
            return list(allowed)
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
            )
        return list(dict.fromkeys(names))

    return parse


# ---------------------------------------------------------------- JSON results


def add_store_options(parser: argparse.ArgumentParser, stores: Sequence[str]) -> None:
    """``--stores`` (comma-separated, of ``stores``; default all) and ``--postgres-url``."""
    parser.add_argument(
        "--stores",
        type=csv_choices(stores),
        default=list(stores),
        help=f"comma-separated, of: {', '.join(stores)} (all)",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="server to make a throw-away database on (env CRM_BENCH_POSTGRES_URL, "
        "else postgresql://postgres@127.0.0.1:5432/postgres)",
    )


def add_output_options(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        default=None,
        help=f"write the figures here (default bench/results/{name}-<timestamp>.json)",
    )


def write_json(name: str, figures: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write ``figures`` with what they were measured on; returns the file written."""
    now = datetime.now(UTC)
    if path is None:
        path = RESULTS_DIR / f"{name}-{now:%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "recorded_at": now.isoformat(timespec="seconds"),
        "environment": environment(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": load_average(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "argv": sys.argv,
    }


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages: other work on the machine
    skews absolute figures (ratios less)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


# ---------------------------------------------------------------- PostgreSQL


def postgres_url(given: str | None) -> str:
    return given or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


@contextmanager
def throwaway_database(admin_url: str, prefix: str = "crm_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        raise ServiceUnavailableError(
            f"PostgreSQL is not usable at {redact(admin_url)}: {one_line(error)}"
        ) from None
    try:
        yield with_database(admin_url, name)
    finally:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error as error:
            err.print(
                f"[yellow]warning:[/yellow] could not drop database {name}: {one_line(error)}"
            )


# ---------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def crm_command() -> list[str]:
    """How to run the ``crm`` command line of this checkout's environment."""
    beside = Path(sys.executable).with_name("crm")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("crm")
    if found:
        return [found]
    return [sys.executable, "-c", "from api.cli import main; main()"]


@dataclass(frozen=True)
class RunningServer:
    """A ``crm serve`` process on a local port, with the Owner token ``crm init`` printed."""

    url: str
    host: str
    port: int
    owner_token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        """Raise :class:`BenchError` with the end of its output if the server has died."""
        if self.process.poll() is not None:
            raise BenchError(
                f"the server exited with {self.process.returncode}; its output ends:\n"
                f"{self.log_tail()}"
            )

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_path, lines)


_ACCESS_LOG = re.compile(r'^INFO: +[\d.:\[\]a-f]+ - "')


def _tail(path: Path, lines: int) -> str:
    """The last lines of a server's output, without its access log (one line a request)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if not _ACCESS_LOG.match(line)]
    return "\n".join(kept[-lines:]) or "(nothing but access log lines)"


def server_env(
    data_dir: Path, database_url: str | None, extra: Mapping[str, str]
) -> dict[str, str]:
    """The environment of the server: this one without any ``CRM_*`` setting of the
    caller's, then the store, no write limit, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    env["CRM_DATA_DIR"] = str(data_dir)
    if database_url:
        env["CRM_DATABASE_URL"] = database_url
    # A few tokens send every command of a benchmark: measure the write path, not the
    # per-token write limit (``--server-env CRM_WRITE_RATE_PER_SECOND=50`` puts it back).
    env["CRM_WRITE_RATE_PER_SECOND"] = "0"
    env.update(extra)
    return env


@contextmanager
def crm_server(
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """``crm init`` then ``crm serve`` in a fresh data directory (and on ``database_url``
    if given, else SQLite), each a separate process; yields once ``GET /health``
    answers, and always stops the server and removes the directory afterwards."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        workdir = Path(tmp)
        env = server_env(workdir / "data", database_url, extra_env or {})
        token = _init(env, workdir)
        serve = [*crm_command(), "serve"]
        with http_server(serve, env, workdir, token, startup_timeout) as server:
            yield server


@contextmanager
def http_server(
    command: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    owner_token: str,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """``command --host H --port P`` as its own process on a free local port, its output
    in ``workdir/server.log``; yields once ``GET /health`` answers, and always stops it."""
    port = free_port()
    host = "127.0.0.1"
    log_path = workdir / "server.log"
    name = " ".join([Path(command[0]).name, *command[1:]])  # for messages: "crm serve"
    with log_path.open("wb") as log:
        # The server's output goes to a file, never a pipe nobody reads: a full pipe
        # would block the server mid-benchmark. Its own session: Ctrl-C reaches only
        # us, and we stop it in order.
        process = subprocess.Popen(
            [*command, "--host", host, "--port", str(port)],
            env=dict(env),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = RunningServer(
            url=f"http://{host}:{port}",
            host=host,
            port=port,
            owner_token=owner_token,
            process=process,
            log_path=log_path,
        )
        _wait_for_health(process, server, startup_timeout, name)
        yield server
    finally:
        stop(process)


def _init(env: Mapping[str, str], workdir: Path) -> str:
    try:
        done = subprocess.run(
            [*crm_command(), "init", "--email", "owner@bench.example", "--name", "Bench Owner"],
            env=dict(env),
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchError(f"`crm init` could not run: {one_line(error)}") from None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        detail = one_line(RuntimeError(done.stderr or done.stdout))
        raise BenchError(f"`crm init` failed ({done.returncode}): {detail}")
    return lines[-1]


def _wait_for_health(
    process: subprocess.Popen[bytes], server: RunningServer, limit: float, name: str
) -> None:
    deadline = time.monotonic() + limit
    while True:
        if process.poll() is not None:
            raise BenchError(
                f"`{name}` exited with {process.returncode} before answering "
                f"GET /health; its output ends:\n{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(
                f"`{name}` did not answer GET /health within {limit:.0f} s; "
                f"its output ends:\n{server.log_tail()}"
            )
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


# ---------------------------------------------------------------- CPU


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of another process so far (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux ``/proc/stat``), or None."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


class CpuMeter:
    """CPU used over an interval by the server process and by this process, as percent
    of one core (100% on the server: its one Python process is saturated), and by the
    whole machine, as percent of all its cores (everything else: the database, other
    work sharing the machine)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._wall = time.perf_counter()
        self._client = time.process_time()
        self._server = process_cpu_seconds(server_pid)
        self._machine = machine_cpu_ticks()

    def read(self) -> dict[str, float | None]:
        wall = time.perf_counter() - self._wall
        client = (time.process_time() - self._client) / wall * 100
        now = process_cpu_seconds(self.server_pid)
        server = None if now is None or self._server is None else (now - self._server) / wall * 100
        machine = None
        ticks = machine_cpu_ticks()
        if ticks is not None and self._machine is not None and ticks[1] > self._machine[1]:
            machine = (ticks[0] - self._machine[0]) / (ticks[1] - self._machine[1]) * 100
        return {"server_pct": server, "client_pct": client, "machine_pct": machine}


# ---------------------------------------------------------------- progress


def progress() -> Progress:
    """A progress display on stderr for long runs (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=err,
        transient=True,
    )
