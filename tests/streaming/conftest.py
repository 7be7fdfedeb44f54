"""A real Kafka-protocol broker for the streaming tests, one per test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import kafka_broker


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The bootstrap address of a Tansu broker (in memory) on a free port."""
    with kafka_broker() as bootstrap:
        yield bootstrap
