"""A record as of a moment is the record folded from exactly the events recorded by
then; a record at version N is the record folded from its first N events.

Random histories of several records of several kinds go through the real write side
(``execute``), on SQLite and on PostgreSQL, with snapshots every few events so that
loading at a version starts from a snapshot as often as not. The expected record is
folded here from the stored events themselves, decoded one by one, with no snapshot
and no search; moments are taken at, just before, just after and between the
events' timestamps, and before the first and after the last.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, CanMutateAggregate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.schemas import public
from commands.accounts import ArchiveAccount, RegisterAccount, RestoreAccount, UpdateAccount
from commands.app import Crm
from commands.contacts import CreateContact, TagContact, UntagContact
from commands.context import Payload
from commands.deals import MoveDeal, OpenDeal, ReopenDeal, UpdateDeal, WinDeal
from commands.errors import CommandError
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import DomainError, InvalidValueError
from domain.roles import Role
from domain.user import User
from replay.records import RecordNotFoundError, record_as_of
from tests.conftest import invite
from tests.services import StoreFactory

KINDS: tuple[type[Aggregate], ...] = (Account, Deal, Contact)
NAMES = st.sampled_from(["Acme", "Globex", "Initech", "Umbrella"])
STAGES = ["Lead", "Qualified", "Proposal"]
#: (operation, which record of its kind, a value)
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "register",
                "rename",
                "archive",
                "restore",
                "open",
                "move",
                "retitle",
                "win",
                "reopen",
                "create",
                "tag",
                "untag",
            ]
        ),
        st.integers(min_value=0, max_value=1),
        NAMES,
    ),
    min_size=10,
    max_size=40,
)
EXAMPLES = {"sqlite": 20, "postgres": 8}


class History:
    """Random commands on a few records; refused ones write nothing and are skipped."""

    def __init__(self, crm: Crm) -> None:
        self.crm = crm
        self.owner = invite(crm, "owner@example.com", Role.OWNER)
        self.pipeline = self.run(
            CreatePipeline(name="Sales", stages=[StageSpec(name=s, probability=10) for s in STAGES])
        )
        self.records: dict[type[Aggregate], list[UUID]] = {kind: [] for kind in KINDS}

    def run(self, command: Payload) -> UUID:
        return execute(self.crm, command, self.owner.ctx).id

    def pick(self, kind: type[Aggregate], index: int) -> UUID | None:
        ids = self.records[kind]
        return ids[index % len(ids)] if ids else None

    def step(self, operation: str, index: int, value: str) -> None:
        owner = self.owner.user.id
        creations: dict[str, tuple[type[Aggregate], Callable[[], Payload]]] = {
            "register": (Account, lambda: RegisterAccount(name=value, owner_id=owner)),
            "open": (
                Deal,
                lambda: OpenDeal(
                    title=value, amount="10", currency="EUR", pipeline_id=self.pipeline
                ),
            ),
            "create": (Contact, lambda: CreateContact(first_name=value)),
        }
        if operation in creations:
            kind, make = creations[operation]
            self.records[kind].append(self.run(make()))
            return
        changes: dict[str, tuple[type[Aggregate], Callable[[UUID], Payload]]] = {
            "rename": (Account, lambda i: UpdateAccount(account_id=i, name=value)),
            "archive": (Account, lambda i: ArchiveAccount(account_id=i)),
            "restore": (Account, lambda i: RestoreAccount(account_id=i)),
            "move": (Deal, lambda i: MoveDeal(deal_id=i, stage=STAGES[index % len(STAGES)])),
            "retitle": (Deal, lambda i: UpdateDeal(deal_id=i, title=value)),
            "win": (Deal, lambda i: WinDeal(deal_id=i, reason=value)),
            "reopen": (Deal, lambda i: ReopenDeal(deal_id=i)),
            "tag": (Contact, lambda i: TagContact(contact_id=i, tag=value)),
            "untag": (Contact, lambda i: UntagContact(contact_id=i, tag=value)),
        }
        kind, change = changes[operation]
        record_id = self.pick(kind, index)
        if record_id is None:
            return
        with contextlib.suppress(DomainError, CommandError):  # refused: nothing written
            self.run(change(record_id))


def stored_events(crm: Crm, record_id: UUID) -> list[CanMutateAggregate[UUID]]:
    """The record's events as stored, decoded afresh (folding may share their lists)."""
    events = []
    for stored in crm.recorder.select_events(record_id):
        event = crm.mapper.to_domain_event(stored)
        assert isinstance(event, CanMutateAggregate)
        events.append(event)
    return events


def fold(
    crm: Crm, record_id: UUID, *, moment: datetime | None = None, version: int | None = None
) -> Any:
    """The record folded here from its stored events recorded by ``moment``, or up to
    ``version``, as JSON (None: no such event)."""
    record: Aggregate | None = None
    for event in stored_events(crm, record_id):
        if moment is not None and event.timestamp > moment:
            continue
        if version is not None and event.originator_version > version:
            continue
        record = event.mutate(record)
    return public_json(record)


def moments(events: list[CanMutateAggregate[UUID]]) -> list[datetime]:
    """At, just around and between every event's timestamp; before and after them all."""
    tick = timedelta(microseconds=1)
    times = [e.timestamp for e in events]
    found = [times[0] - timedelta(days=1), times[-1] + timedelta(days=1)]
    for t in times:
        found += [t - tick, t, t + tick]
    found += [a + (b - a) / 2 for a, b in itertools.pairwise(times)]
    return found


def public_json(record: Aggregate | None) -> Any:
    return None if record is None else public(record).model_dump(mode="json")


@pytest.mark.parametrize("snapshot_every", [0, 3])
def test_a_record_as_of_a_moment_is_folded_from_the_events_recorded_by_then(
    empty_store: StoreFactory, store_kind: str, snapshot_every: int
) -> None:
    @settings(
        max_examples=EXAMPLES[store_kind] // 2,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(steps=STEPS, data=st.data())
    def check(steps: list[tuple[str, int, str]], data: st.DataObject) -> None:
        crm = Crm(env={**empty_store(), "CRM_SNAPSHOT_EVERY": str(snapshot_every)})
        try:
            history = History(crm)
            for step in steps:
                history.step(*step)
            records = [(k, i) for k, ids in history.records.items() for i in ids]
            records.append((User, history.owner.user.id))
            for kind, record_id in records:
                events = stored_events(crm, record_id)
                assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
                chosen = data.draw(
                    st.lists(st.sampled_from(moments(events)), min_size=1, max_size=6),
                    label=f"moments for {kind.__name__}",
                )
                for moment in chosen:
                    expected = fold(crm, record_id, moment=moment)
                    if expected is None:
                        with pytest.raises(RecordNotFoundError, match="did not exist yet"):
                            record_as_of(crm, kind, record_id, moment=moment)
                        continue
                    got = record_as_of(crm, kind, record_id, moment=moment)
                    assert public_json(got) == expected, moment
                # At a version: the first N events, every N there is.
                for version in range(1, len(events) + 1):
                    got = record_as_of(crm, kind, record_id, version=version)
                    expected = fold(crm, record_id, version=version)
                    assert public_json(got) == expected
                with pytest.raises(InvalidValueError, match="no version"):
                    record_as_of(crm, kind, record_id, version=len(events) + 1)
        finally:
            crm.close()

    check()
