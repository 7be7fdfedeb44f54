"""A read model built in bulk (SQL over the staged events) equals the same read model
built by its handlers, and the handlers carry on from a bulk build as from their own.

The machine of ``test_incremental_equals_rebuild`` drives random commands; its read
side now and then, instead of a restart, throws its read models away and builds them
again in bulk up to the current head, and the handlers take over from there. Its
checks compare with a rebuild through the handlers; at the end a bulk build from
zero must equal it too. Every projector with a bulk path is covered, one at a time
(``-k board``), so that a failure names the read model.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings

from commands.accounts import ArchiveAccount, RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.handlers import execute
from projections.bulk import build, can_build_in_bulk, has_bulk_path, stage
from projections.events import decode
from projections.files import ReadFiles
from projections.projector import Projector
from projections.registry import PROJECTORS
from projections.store import ReadStore
from projections.tables import Table
from replay.rebuild import rebuild
from tests.conftest import Person
from tests.projections.compare import assert_same_as_rebuilt, content
from tests.projections.test_incremental_equals_rebuild import (
    RUNS,
    ProjectedCrmMachine,
    Tally,
    run_projected_machine,
)
from tests.services import StoreFactory


class BulkTally(Tally):
    """The failing-projector test's tally with a bulk path: the harness's own check."""

    name = "bulk_tally"

    def declare_tables(self) -> list[Table]:
        tables = super().declare_tables()
        self.seen.name, self.counted.name = "bulk_tally_seen", "bulk_tally_counts"
        return tables

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.counts = Counter(
            dict(con.execute("SELECT event, count FROM bulk_tally_counts").fetchall())
        )

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        con.execute("INSERT INTO bulk_tally_seen SELECT position, name FROM events")
        con.execute("INSERT INTO bulk_tally_counts SELECT name, count(*) FROM events GROUP BY name")
        return True


BULK: dict[str, Callable[[], Projector]] = {
    name: make for name, make in PROJECTORS.items() if has_bulk_path(make())
} | {BulkTally.name: BulkTally}


#: Lighter than the handlers' own property test: it runs once per read model, and each
#: read model's own test file adds hand-written histories its SQL must match.
BULK_RUNS = {
    "sqlite": settings(RUNS["sqlite"], max_examples=10, stateful_step_count=35),
    "postgres": settings(RUNS["postgres"], max_examples=5, stateful_step_count=30),
}


class BulkCrmMachine(ProjectedCrmMachine):
    """Read turns that would restart the read models rebuild them in bulk instead,
    one turn in two."""

    generations = itertools.count()

    def take_a_read_turn(self, batch_size: int, pages: int | None, restart: bool) -> None:
        if not (restart and batch_size % 2):
            super().take_a_read_turn(batch_size, pages, restart)
            return
        self.close_stores()
        path = self.directory / f"bulk-{next(self.generations)}.duckdb"
        store = ReadStore(path, [make() for make in self.factories.values()])
        self.stores = [store]
        build(store, stage(self.crm.recorder))
        assert store.low_position() == self.crm.position()

    def teardown(self) -> None:
        try:
            if self.stores:
                bulk = bulk_built(self.crm, self.factories, self.directory / "final.duckdb")
                try:
                    assert_same_as_rebuilt(self.crm.recorder, self.factories, [bulk])
                finally:
                    bulk.close()
        finally:
            super().teardown()


def bulk_built(crm: Crm, factories: dict[str, Callable[[], Projector]], path: Path) -> ReadStore:
    store = ReadStore(path, [make() for make in factories.values()])
    assert can_build_in_bulk(store)
    build(store, stage(crm.recorder))
    return store


@pytest.mark.parametrize("name", sorted(BULK))
def test_a_bulk_build_equals_the_handlers_build_and_they_carry_on_from_it(
    name: str, store_kind: str, empty_store: StoreFactory, tmp_path: Path
) -> None:
    run_projected_machine(
        BulkCrmMachine, empty_store, tmp_path, BULK_RUNS[store_kind], {name: BULK[name]}
    )


def test_bulk_build_refuses_a_projector_without_a_bulk_path_and_writes_nothing(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    execute(crm, RegisterAccount(name="Acme"), owner.ctx)
    store = ReadStore(tmp_path / "read.duckdb", [BulkTally(), Tally()])
    try:
        before = content([store])
        with pytest.raises(ValueError, match="cannot build in bulk"):
            build(store, stage(crm.recorder))
        assert content([store]) == before
        assert store.low_position() == 0
    finally:
        store.close()


def test_staged_events_match_the_decoded_events(crm: Crm, owner: Person) -> None:
    execute(crm, RegisterAccount(name="Acme", industry="Retail"), owner.ctx)
    staged = stage(crm.recorder)
    rows = staged.events.to_pylist()
    decoded = [decode(n) for n in crm.recorder.select_notifications(1, 1000)]
    assert staged.position == crm.position() == decoded[-1].position
    assert len(rows) == len(decoded)
    for row, event in zip(rows, decoded, strict=True):
        for column in ("position", "aggregate_id", "version", "name", "recorded_at"):
            assert row[column] == getattr(event, column), column
        for column in ("actor", "request_id", "source"):
            assert row[column] == getattr(event, column), column
    stored = [bytes(n.state).decode() for n in crm.recorder.select_notifications(1, 1000)]
    assert [row["state"] for row in rows] == stored


@pytest.mark.parametrize("name", sorted(BULK))
def test_a_rebuild_applies_the_events_committed_after_its_staged_events(
    name: str, crm: Crm, owner: Person, tmp_path: Path
) -> None:
    """The bulk build leaves the handlers' memory unloaded; the events committed after
    the staged ones are applied with it loaded from the new tables."""
    first = execute(crm, RegisterAccount(name="Acme", industry="Retail"), owner.ctx).id
    second = execute(crm, RegisterAccount(name="Globex"), owner.ctx).id
    staged = stage(crm.recorder)
    execute(crm, UpdateAccount(account_id=first, name="Acme Ltd", industry="Mining"), owner.ctx)
    execute(crm, ArchiveAccount(account_id=second), owner.ctx)
    rebuilt = rebuild(crm.recorder, ReadFiles(tmp_path), name, BULK[name], staged=staged)
    assert rebuilt.position == crm.position() > staged.position
    store = ReadStore(rebuilt.path, [BULK[name]()])
    try:
        assert_same_as_rebuilt(crm.recorder, {name: BULK[name]}, [store])
    finally:
        store.close()
