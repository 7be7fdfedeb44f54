"""Every read model as of a moment or position equals the same read model built by a
fresh projector, through its handlers, over exactly that prefix of the event log.

Random command histories come from the state machine of
``tests/projections/test_incremental_equals_rebuild.py`` (its read side left idle):
now and then a rule cuts the log at a random position, or at a random moment around
the timestamp of a random event, builds every read model as of it
(``replay.as_of.read_models_as_of``: the bulk path into a throw-away DuckDB) and
compares every table, row for row, with a ``Runner.catch_up(stop=P)`` on an empty
in-memory ``ReadStore``. A cut at a moment must also be the reference cut: the last
event before the first command not wholly recorded by then.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from projections.registry import PROJECTORS
from replay.as_of import position_as_of, read_models_as_of
from tests.projections.compare import content, differences, owners, rebuild
from tests.projections.test_incremental_equals_rebuild import (
    ProjectedCrmMachine,
    run_projected_machine,
)
from tests.replay.test_position_as_of import expected
from tests.services import StoreFactory

RUNS = {
    "sqlite": settings(max_examples=8, stateful_step_count=30),
    "postgres": settings(max_examples=4, stateful_step_count=25),
}
SHIFTS = st.sampled_from([-1, 0, 1])


class AsOfMachine(ProjectedCrmMachine):
    """Random histories; the read models are built only as of the cuts."""

    def take_a_read_turn(self, batch_size: int, pages: int | None, restart: bool) -> None:
        pass

    def has_events(self) -> bool:
        return self.crm.position() > 0

    def assert_as_of_equals_fresh_projector(self, position: int) -> None:
        built = read_models_as_of(self.crm.recorder, position)
        try:
            assert built.position <= position
            as_of = content([built.store])
        finally:
            built.close()
        fresh = rebuild(self.crm.recorder, PROJECTORS, stop=position)
        problems = differences(as_of, fresh, owners(PROJECTORS))
        assert not problems, f"as of {position} != fresh projector:\n" + "\n".join(problems)

    @precondition(has_events)
    @rule(share=st.floats(min_value=0, max_value=1.05))
    def the_read_models_as_of_a_position_equal_a_fresh_projector(self, share: float) -> None:
        self.assert_as_of_equals_fresh_projector(int(self.crm.position() * share))

    @precondition(has_events)
    @rule(pick=st.integers(min_value=0), shift=SHIFTS)
    def the_read_models_as_of_a_moment_equal_a_fresh_projector(self, pick: int, shift: int) -> None:
        events = self.crm.recorder.select_notifications(1, 1_000_000)
        stamp = datetime.fromisoformat(
            orjson.loads(events[pick % len(events)].state)["timestamp"]["_data_"]
        )
        at = stamp + shift * timedelta(microseconds=1)
        position = position_as_of(self.crm.recorder, at)
        assert position == expected(self.crm.recorder, at)
        self.assert_as_of_equals_fresh_projector(position)

    def the_read_models_caught_up_equal_a_rebuild_from_zero(self) -> None:
        self.assert_as_of_equals_fresh_projector(self.crm.position())


def test_every_read_model_as_of_a_cut_equals_a_fresh_projector_over_that_prefix(
    store_kind: str, empty_store: StoreFactory, tmp_path: Path
) -> None:
    run_projected_machine(AsOfMachine, empty_store, tmp_path, RUNS[store_kind])
