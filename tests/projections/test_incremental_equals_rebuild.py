"""Every read model built incrementally equals the same read model rebuilt from zero.

The write side's state machine (``tests/commands/test_properties.py``) sends random
commands, valid and refused, through the real handlers; this one adds the commands it
leaves out, and feeds the read models as the events come: after each command that
wrote events the read side takes a turn from a random plan — a runner with a random
batch size applies a few pages (or catches up to the head), then maybe the read store
is closed and opened again on its DuckDB file, so that every projector reloads its
in-memory state with ``load()`` before the next events. Now and then the read models
so far are compared with a rebuild up to the same position.

At the end the read models catch up to the head and must equal a rebuild from zero
in one batch, row for row in every table, positions included. Every projector
registered in ``PROJECTORS`` is covered.

A second test shows a failing projector stopping loudly without skipping an event.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar
from uuid import UUID

import duckdb
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from commands.accounts import (
    ArchiveAccount,
    ReassignAccount,
    RegisterAccount,
    RemoveAccount,
    UpdateAccount,
)
from commands.app import Crm
from commands.contacts import (
    ChangeLifecycleStage,
    EraseContact,
    LinkContactToAccount,
    ReassignContact,
    RemoveContact,
    TagContact,
    UntagContact,
    UpdateContact,
)
from commands.context import Context, Payload, Receipt
from commands.deals import ReassignDeal, RemoveDeal, UpdateDeal
from commands.errors import CommandError
from commands.handlers import execute
from commands.pipelines import ChangeStage, RenamePipeline, ReorderStages
from commands.tasks import AssignTask, UpdateTask
from commands.users import AssignManager, IssueToken, RevokeToken
from domain.contact import EMAIL_SCOPE, ErasureBasis, LifecycleStage
from domain.errors import DomainError
from domain.index import UniqueKey
from domain.pipeline import Pipeline
from domain.privacy import ERASED
from domain.user import User
from projections.events import Recorded
from projections.projector import ProjectionError, Projector
from projections.registry import PROJECTORS
from projections.runner import Runner
from projections.store import ReadStore
from projections.tables import Column, Table
from tests.commands.test_properties import ACTORS, STAGE_NAMES, CrmMachine, state
from tests.conftest import Person
from tests.projections.compare import assert_same_as_rebuilt, content, rebuild
from tests.services import StoreFactory

#: A turn of the read side: a batch size, how many pages of it to apply (None: catch
#: up to the head), and whether to restart the read models afterwards.
ReadTurn = tuple[int, int | None, bool]
READ_TURNS = st.tuples(
    st.integers(min_value=1, max_value=40),
    st.none() | st.integers(min_value=0, max_value=3),
    st.booleans(),
)
TAGS = st.sampled_from(["vip", "VIP ", "partner", "churn-risk"])
NAMES = st.sampled_from(["Acme", "Globex", "Initech"])
CLOSE_DATES = st.none() | st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))

RUNS = {
    "sqlite": settings(max_examples=20, stateful_step_count=40),
    "postgres": settings(max_examples=10, stateful_step_count=35),
}


class ProjectedCrmMachine(CrmMachine):
    """The write side's machine, with the read models fed incrementally alongside."""

    #: What the read side does after each command that wrote events, in turn.
    plan: Iterator[ReadTurn] | None = None
    #: Contacts removed, which may still be erased.
    removed_contacts = Bundle[UUID]("removed_contacts")
    #: The read models it feeds.
    read_models: ClassVar[Mapping[str, Callable[[], Projector]]] = PROJECTORS

    def new_read_directory(self) -> Path:
        raise NotImplementedError("subclasses say where each example's DuckDB files live")

    def __init__(self) -> None:
        super().__init__()
        self.factories = dict(self.read_models)
        self.directory = self.new_read_directory()
        self.stores = self.open_stores()
        self.compared_at = 0
        #: The position of the last erasure carried out (0: none yet).
        self.last_erasure = 0

    # -- the read side ------------------------------------------------------------------

    def open_stores(self) -> list[ReadStore]:
        # All read models in one DuckDB file (``ReadModels`` keeps one file each): a
        # restart costs a DuckDB open per file, and the runner feeds one store or
        # several alike.
        projectors = [make() for make in self.factories.values()]
        return [ReadStore(self.directory / "read.duckdb", projectors)]

    def close_stores(self) -> None:
        for store in self.stores:
            store.close()
        self.stores = []

    @initialize(plan=st.lists(READ_TURNS, min_size=1, max_size=12))
    def plan_the_read_side(self, plan: list[ReadTurn]) -> None:
        self.plan = itertools.cycle(plan)

    def attempt(self, command: Payload, ctx: Context) -> Receipt | DomainError | CommandError:
        outcome = super().attempt(command, ctx)
        if isinstance(outcome, Receipt) and self.plan is not None:
            self.take_a_read_turn(*next(self.plan))
        return outcome

    def take_a_read_turn(self, batch_size: int, pages: int | None, restart: bool) -> None:
        """Apply ``pages`` pages of ``batch_size`` events (None: all there are); then
        maybe restart: close the stores and open them again on the same file, so that
        every projector reloads its memory from its tables before the next events."""
        runner = Runner(self.crm.recorder, self.stores, batch_size=batch_size)
        if pages is None:
            runner.catch_up()
            assert runner.position == self.crm.position()
        for _ in range(pages or 0):
            if runner.step() == 0:
                break
        if restart:
            self.close_stores()
            self.stores = self.open_stores()

    def advanced_since_compared(self) -> bool:
        return self.stores[0].low_position() != self.compared_at

    def past_every_erasure(self) -> bool:
        # A rebuild to a position before an erasure already reads the erased contact's
        # events erased (its key is gone), where the read models at that position read
        # them in plain: nothing can agree there before the erasure is applied.
        return self.stores[0].low_position() >= self.last_erasure

    @precondition(lambda self: self.advanced_since_compared() and self.past_every_erasure())
    @rule()
    def the_read_models_so_far_equal_a_rebuild_to_the_same_position(self) -> None:
        assert_same_as_rebuilt(self.crm.recorder, self.factories, self.stores)
        self.compared_at = self.stores[0].low_position()

    def teardown(self) -> None:
        try:
            # Skip the final check when a step has already failed: its error is the news.
            if sys.exc_info()[1] is None:
                self.the_read_models_caught_up_equal_a_rebuild_from_zero()
        finally:
            self.close_stores()
            super().teardown()

    def the_read_models_caught_up_equal_a_rebuild_from_zero(self) -> None:
        runner = Runner(self.crm.recorder, self.stores, batch_size=7)
        runner.catch_up()
        assert runner.position == self.crm.position() > 0
        assert_same_as_rebuilt(self.crm.recorder, self.factories, self.stores)

    # -- commands the write side's machine leaves out -------------------------------------
    # The model of that machine does not predict these commands' refusals: they are
    # carried out or refused, and a refused one must write nothing. Where one changes
    # what the model tracks (stage names and order), the model follows the aggregate.

    def attempt_command(self, command: Payload, actor: int) -> Receipt | None:
        before, touched = self.crm.position(), len(self.crm.touched)
        ctx = Context(actor=self.actor(actor), source="test", now=self.now)
        outcome = self.attempt(command, ctx)
        if isinstance(outcome, Receipt):
            return outcome
        assert self.crm.position() == before, f"refused {command!r} wrote events"
        assert len(self.crm.touched) == touched, f"refused {command!r} saved aggregates"
        return None

    @rule(actor=ACTORS, account=CrmMachine.accounts, name=NAMES, country=st.none() | NAMES)
    def update_account(self, actor: int, account: UUID, name: str, country: str | None) -> None:
        industry = None if country is None else f"{country} industry"
        self.attempt_command(UpdateAccount(account_id=account, name=name, industry=industry), actor)

    @rule(actor=ACTORS, account=CrmMachine.accounts, owner=CrmMachine.users)
    def reassign_account(self, actor: int, account: UUID, owner: UUID) -> None:
        self.attempt_command(ReassignAccount(account_id=account, owner_id=owner), actor)

    @rule(actor=ACTORS, contact=CrmMachine.contacts, account=st.none() | CrmMachine.accounts)
    def link_contact_to_account(self, actor: int, contact: UUID, account: UUID | None) -> None:
        self.attempt_command(LinkContactToAccount(contact_id=contact, account_id=account), actor)

    @rule(actor=ACTORS, contact=CrmMachine.contacts, owner=CrmMachine.users)
    def reassign_contact(self, actor: int, contact: UUID, owner: UUID) -> None:
        self.attempt_command(ReassignContact(contact_id=contact, owner_id=owner), actor)

    @rule(actor=ACTORS, contact=CrmMachine.contacts, tag=TAGS, add=st.booleans())
    def tag_or_untag_contact(self, actor: int, contact: UUID, tag: str, add: bool) -> None:
        command = (
            TagContact(contact_id=contact, tag=tag)
            if add
            else UntagContact(contact_id=contact, tag=tag)
        )
        self.attempt_command(command, actor)

    @rule(actor=ACTORS, contact=CrmMachine.contacts, stage=st.sampled_from(LifecycleStage))
    def change_lifecycle_stage(self, actor: int, contact: UUID, stage: LifecycleStage) -> None:
        self.attempt_command(ChangeLifecycleStage(contact_id=contact, stage=stage), actor)

    @rule(actor=ACTORS, contact=CrmMachine.contacts, name=NAMES, job=st.none() | NAMES)
    def change_contact_details(self, actor: int, contact: UUID, name: str, job: str | None) -> None:
        self.attempt_command(
            UpdateContact(contact_id=contact, last_name=name, job_title=job), actor
        )

    @rule(actor=ACTORS, pipeline=CrmMachine.pipelines, name=NAMES)
    def rename_pipeline(self, actor: int, pipeline: UUID, name: str) -> None:
        self.attempt_command(RenamePipeline(pipeline_id=pipeline, name=name), actor)

    def stages_changed(self, pipeline: UUID) -> None:
        stages = self.live(Pipeline, pipeline).stages
        self.model.stages[pipeline] = [(stage.id, stage.name) for stage in stages]

    @rule(actor=ACTORS, pipeline=CrmMachine.pipelines, pick=st.integers(0, 5), name=STAGE_NAMES)
    def rename_stage(self, actor: int, pipeline: UUID, pick: int, name: str) -> None:
        stage_id, _ = self.model.stages[pipeline][pick % len(self.model.stages[pipeline])]
        command = ChangeStage(pipeline_id=pipeline, stage_id=stage_id, name=name)
        if self.attempt_command(command, actor):
            self.stages_changed(pipeline)

    @rule(
        actor=ACTORS,
        pipeline=CrmMachine.pipelines,
        order=st.permutations(range(8)),
        drop_one=st.booleans(),
    )
    def reorder_stages(self, actor: int, pipeline: UUID, order: list[int], drop_one: bool) -> None:
        stages = self.model.stages[pipeline]
        stage_ids = [stages[i][0] for i in order if i < len(stages)]
        if drop_one:  # not every stage: refused
            stage_ids = stage_ids[1:] or stage_ids
        if self.attempt_command(ReorderStages(pipeline_id=pipeline, stage_ids=stage_ids), actor):
            self.stages_changed(pipeline)

    @rule(actor=ACTORS, deal=CrmMachine.deals, owner=CrmMachine.users)
    def reassign_deal(self, actor: int, deal: UUID, owner: UUID) -> None:
        self.attempt_command(ReassignDeal(deal_id=deal, owner_id=owner), actor)

    @rule(
        actor=ACTORS,
        deal=CrmMachine.deals,
        close=CLOSE_DATES,
        title=st.none() | NAMES,
        contacts=st.none() | st.lists(CrmMachine.contacts, max_size=2),
    )
    def change_deal_details(
        self,
        actor: int,
        deal: UUID,
        close: date | None,
        title: str | None,
        contacts: list[UUID] | None,
    ) -> None:
        command = UpdateDeal(deal_id=deal, expected_close_date=close, contact_ids=contacts)
        if title is not None:
            command = UpdateDeal(
                deal_id=deal, title=title, expected_close_date=close, contact_ids=contacts
            )
        self.attempt_command(command, actor)

    @rule(
        actor=ACTORS,
        task=CrmMachine.tasks,
        title=NAMES,
        due_in_days=st.none() | st.integers(min_value=-3, max_value=30),
    )
    def update_task(self, actor: int, task: UUID, title: str, due_in_days: int | None) -> None:
        due_at = None if due_in_days is None else self.now + timedelta(days=due_in_days)
        self.attempt_command(UpdateTask(task_id=task, title=title, due_at=due_at), actor)

    @rule(actor=ACTORS, task=CrmMachine.tasks, assignee=CrmMachine.users)
    def assign_task(self, actor: int, task: UUID, assignee: UUID) -> None:
        self.attempt_command(AssignTask(task_id=task, assignee_id=assignee), actor)

    # Removals take the record out of its bundle: no later rule draws it, so the write
    # side's model never predicts a command on it (each would be refused as removed).
    # Its interactions, tasks, deals and contacts stay, and go on changing.

    @rule(actor=ACTORS, account=consumes(CrmMachine.accounts))
    def remove_account(self, actor: int, account: UUID) -> None:
        self.attempt_command(RemoveAccount(account_id=account, reason="duplicate"), actor)

    @rule(target=removed_contacts, actor=ACTORS, contact=consumes(CrmMachine.contacts))
    def remove_contact(self, actor: int, contact: UUID) -> UUID | MultipleResults[UUID]:
        if not self.attempt_command(RemoveContact(contact_id=contact), actor):
            return multiple()
        self.model.contacts[contact] = []  # its addresses are free again
        return contact

    # GDPR erasure: the contact's key is destroyed with ``Contact.Erased``; every earlier
    # event of it reads erased from then on, and a rebuild (which reads them so) must
    # equal the read models that blanked or dropped what they held. A live contact, with
    # whatever deals, interactions and tasks name it, or one removed before.

    @rule(actor=ACTORS, contact=consumes(CrmMachine.contacts))
    def erase_contact(self, actor: int, contact: UUID) -> None:
        receipt = self.attempt_command(
            EraseContact(contact_id=contact, basis=ErasureBasis.CONSENT_WITHDRAWN), actor
        )
        if receipt is not None:
            self.contact_erased(contact, receipt.position)

    @rule(actor=ACTORS, contact=consumes(removed_contacts))
    def erase_removed_contact(self, actor: int, contact: UUID) -> None:
        receipt = self.attempt_command(
            EraseContact(contact_id=contact, basis=ErasureBasis.CONSENT_WITHDRAWN), actor
        )
        if receipt is not None:
            self.contact_erased(contact, receipt.position)

    def contact_erased(self, contact: UUID, position: int) -> None:
        self.last_erasure = position
        self.model.contacts[contact] = []  # its addresses are free again
        # The e-mail keys it claimed first now reload with the address erased, and
        # nothing else changed: the ones in memory follow, as the next command loads them.
        for record_id, record in list(self.crm.live.items()):
            if isinstance(record, UniqueKey) and record.scope == EMAIL_SCOPE:
                reloaded: UniqueKey = self.reader.repository.get(record_id)
                assert reloaded.key in (record.key, ERASED), f"{record.key} reloads wrong"
                assert state(reloaded) == {**state(record), "key": reloaded.key}
                self.crm.live[record_id] = reloaded

    @rule(actor=ACTORS, deal=consumes(CrmMachine.deals))
    def remove_deal(self, actor: int, deal: UUID) -> None:
        self.attempt_command(RemoveDeal(deal_id=deal, reason="test data"), actor)

    @rule(actor=ACTORS, user=CrmMachine.users, revoke=st.booleans())
    def issue_or_revoke_token(self, actor: int, user: UUID, revoke: bool) -> None:
        tokens = sorted(self.live(User, user).tokens, key=str)
        if revoke and tokens:
            self.attempt_command(RevokeToken(user_id=user, token_id=UUID(tokens[0])), actor)
        else:
            self.attempt_command(IssueToken(user_id=user, label="laptop"), actor)

    @rule(actor=ACTORS, user=CrmMachine.users, manager=st.none() | CrmMachine.users)
    def assign_manager(self, actor: int, user: UUID, manager: UUID | None) -> None:
        self.attempt_command(AssignManager(user_id=user, manager_id=manager), actor)


def run_projected_machine(
    machine: type[ProjectedCrmMachine],
    empty_store: StoreFactory,
    tmp_path: Path,
    runs: settings,
    read_models: Mapping[str, Callable[[], Projector]] | None = None,
) -> None:
    """Run ``machine`` with fresh event stores from ``empty_store`` and a fresh read
    directory per example under ``tmp_path``, feeding ``read_models`` (default: all)."""
    directories = (tmp_path / f"read-{n}" for n in itertools.count())

    class Machine(machine):  # type: ignore[valid-type,misc]
        def new_store(self) -> dict[str, str]:
            return empty_store()

        def new_read_directory(self) -> Path:
            directory = next(directories)
            directory.mkdir()
            return directory

    if read_models is not None:
        Machine.read_models = read_models
    run_state_machine_as_test(
        Machine,
        settings=settings(
            runs,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_every_read_model_built_incrementally_equals_it_rebuilt_from_zero(
    store_kind: str, empty_store: StoreFactory, tmp_path: Path
) -> None:
    run_projected_machine(ProjectedCrmMachine, empty_store, tmp_path, RUNS[store_kind])


# -- a failing projector -------------------------------------------------------------------


class Tally(Projector):
    """One row per event and a count per event name, kept in memory between batches;
    fails on every ``fail_on`` event while broken."""

    name = "tally"
    sees_everything = True
    fail_on: ClassVar[str | None] = None

    def declare_tables(self) -> list[Table]:
        self.seen = Table(
            "tally_seen",
            [Column("position", "BIGINT", False), Column("event", "VARCHAR", False)],
            key=["position"],
        )
        self.counted = Table(
            "tally_counts",
            [Column("event", "VARCHAR", False), Column("count", "BIGINT", False)],
            key=["event"],
        )
        return [self.seen, self.counted]

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.counts: Counter[str] = Counter(
            dict(con.execute("SELECT event, count FROM tally_counts").fetchall())
        )

    def on_any(self, event: Recorded) -> None:
        self.seen.append((event.position, event.name))
        self.counts[event.name] += 1
        self.counted.upsert(event.name, (event.name, self.counts[event.name]))
        if event.name == self.fail_on:
            raise RuntimeError("the handler is broken")


class BrokenTally(Tally):
    fail_on = "Account.Archived"


def positions_of(crm: Crm, name: str) -> list[int]:
    return [
        n.id
        for n in crm.recorder.select_notifications(start=1, limit=10_000)
        if n.topic.endswith(f":{name}")
    ]


def test_a_failing_projector_stops_loudly_and_skips_nothing_once_fixed(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    accounts = [execute(crm, RegisterAccount(name=f"Acme {n}"), owner.ctx).id for n in range(3)]
    execute(crm, ArchiveAccount(account_id=accounts[1]), owner.ctx)
    for n in range(3):
        execute(crm, RegisterAccount(name=f"Globex {n}"), owner.ctx)
    (failing,) = positions_of(crm, "Account.Archived")
    head = crm.position()
    assert 3 <= failing <= head - 3
    path = tmp_path / "tally.duckdb"

    broken = ReadStore(path, [BrokenTally()])
    committed = failing - 2
    Runner(crm.recorder, [broken], batch_size=committed).catch_up(stop=committed)
    # The next batch holds an event before the failing one and two after it.
    runner = Runner(crm.recorder, [broken], batch_size=4)
    for _attempt in range(2):  # it fails again at the same event: it never skips it
        with pytest.raises(ProjectionError) as raised:
            runner.step()
        error = raised.value
        assert (error.projection, error.position, error.event_name) == (
            "tally",
            failing,
            "Account.Archived",
        )
        assert f"position {failing} (Account.Archived" in str(error)
        assert broken.position("tally") == committed
        tables = content([broken])
        assert tables["projection_positions"].rows == (("tally", committed),)
        seen = tables["tally_seen"].rows
        assert sorted(position for position, _ in seen) == list(range(1, committed + 1))
        # What the rolled-back batch counted is forgotten in memory too.
        tally = broken.projectors[0]
        assert isinstance(tally, Tally)
        assert dict(tally.counts) == dict(tables["tally_counts"].rows)
        assert sum(tally.counts.values()) == committed
    broken.close()

    fixed = ReadStore(path, [Tally()])
    try:
        assert fixed.position("tally") == committed
        Runner(crm.recorder, [fixed], batch_size=3).catch_up()
        tables = content([fixed])
        assert tables["projection_positions"].rows == (("tally", head),)
        seen = tables["tally_seen"].rows
        assert sorted(position for position, _ in seen) == list(range(1, head + 1))
        assert tables == rebuild(crm.recorder, {"tally": Tally})
    finally:
        fixed.close()
