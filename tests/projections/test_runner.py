"""The runner feeds several stores side by side: a page reaches every store, and a store
whose projector fails stops the runner loudly without holding back the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.accounts import ArchiveAccount, RegisterAccount
from commands.app import Crm
from commands.handlers import execute
from projections.projector import ProjectionError
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person
from tests.projections.compare import content, rebuild
from tests.projections.test_incremental_equals_rebuild import BrokenTally, Tally, positions_of


def test_a_failing_store_stops_the_runner_and_the_others_apply_the_page(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    first = execute(crm, RegisterAccount(name="Acme"), owner.ctx).id
    execute(crm, ArchiveAccount(account_id=first), owner.ctx)
    execute(crm, RegisterAccount(name="Globex"), owner.ctx)
    (failing,) = positions_of(crm, "Account.Archived")
    head = crm.position()
    broken = ReadStore(tmp_path / "broken.duckdb", [BrokenTally()])
    healthy = ReadStore(tmp_path / "healthy.duckdb", [Tally()])
    try:
        runner = Runner(crm.recorder, [broken, healthy], batch_size=head)
        with pytest.raises(ProjectionError) as raised:
            runner.step()
        assert (raised.value.position, raised.value.event_name) == (failing, "Account.Archived")
        assert broken.position("tally") == 0
        assert healthy.position("tally") == head
        assert content([healthy]) == rebuild(crm.recorder, {"tally": Tally})
    finally:
        runner.stop()
        broken.close()
        healthy.close()

    fixed = ReadStore(tmp_path / "broken.duckdb", [Tally()])
    try:
        Runner(crm.recorder, [fixed], batch_size=2).catch_up()
        assert content([fixed]) == rebuild(crm.recorder, {"tally": Tally})
    finally:
        fixed.close()
