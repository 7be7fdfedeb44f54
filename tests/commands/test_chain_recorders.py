"""The recorders that write the hash chain are still recorders: they pass the library's
own ``ApplicationRecorderTestCase`` on SQLite and PostgreSQL, and after each of its
tests (concurrent writers included) the store verifies OK against its chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

from commands.chain import ChainedPostgresApplicationRecorder, ChainedSQLiteApplicationRecorder
from replay.verify import verify
from tests.services import new_schema


class ChainChecked(ApplicationRecorderTestCase[ApplicationRecorder]):
    """After each test of the library, every recorder it made verifies OK."""

    made: list[ApplicationRecorder]

    def setUp(self) -> None:
        super().setUp()
        self.made = []

    def tearDown(self) -> None:
        for recorder in self.made:
            verified = verify(recorder)
            assert verified.ok, verified.problem
        super().tearDown()

    # The library's timing tests measure the machine, not the recorder (timings are
    # measured in bench/, never asserted in tests): not collected.
    test_performance = None  # type: ignore[assignment]
    test_concurrent_throughput = None  # type: ignore[assignment]


class TestChainedSQLiteRecorder(ChainChecked):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def create_recorder(self) -> ApplicationRecorder:
        path = self.directory / f"events-{len(self.made)}.sqlite"
        recorder = ChainedSQLiteApplicationRecorder(SQLiteDatastore(str(path)))
        recorder.create_table()
        self.made.append(recorder)
        return recorder


@pytest.mark.postgres
class TestChainedPostgresRecorder(ChainChecked):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> Iterator[None]:
        self.url = postgres_database
        self.datastores: list[PostgresDatastore] = []
        yield
        for datastore in self.datastores:
            datastore.close()

    def create_recorder(self) -> ApplicationRecorder:
        url = urlparse(self.url)
        datastore = PostgresDatastore(
            dbname=url.path.lstrip("/"),
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            schema=new_schema(self.url),
            pool_size=4,
            max_overflow=4,
        )
        self.datastores.append(datastore)
        recorder = ChainedPostgresApplicationRecorder(datastore)
        recorder.create_table()
        self.made.append(recorder)
        return recorder
