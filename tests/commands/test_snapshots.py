"""Snapshots: a record loads from its latest snapshot plus the events after it, and
that equals the record replayed from all its events — at every version."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from commands.accounts import RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.context import Context
from commands.deals import MoveDeal, OpenDeal
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from commands.users import InviteUser, IssueToken, RevokeToken
from domain.roles import Authority, Role
from domain.user import User
from tests.conftest import Store

EVERY = 7


def replayed(crm: Crm, record_id: UUID, version: int | None = None) -> Aggregate:
    """The record from its events alone, without any snapshot."""
    aggregate: Any = None
    for event in crm.events.get(record_id, lte=version):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
    assert isinstance(aggregate, Aggregate)
    return aggregate


def state(aggregate: Aggregate) -> dict[str, Any]:
    return dict(vars(aggregate))


@pytest.fixture
def snapshotting(store: Store) -> Crm:
    return Crm(env={**store.env, "CRM_SNAPSHOT_EVERY": str(EVERY)})


def test_long_records_load_from_snapshots_as_they_replay_at_every_version(
    snapshotting: Crm,
) -> None:
    crm = snapshotting
    system = Context(actor=Authority.system(), source="test")
    owner = execute(crm, InviteUser(email="o@example.com", name="O", role=Role.OWNER), system)
    me = Context(actor=crm.load(User, owner.id).authority, source="test")
    stages = [StageSpec(name=f"S{i}", probability=i * 10) for i in range(5)]
    pipeline = execute(crm, CreatePipeline(name="Sales", stages=stages), me)
    opening = OpenDeal(title="T", amount=Decimal("10"), currency="EUR", pipeline_id=pipeline.id)
    deal = execute(crm, opening, me)
    account = execute(crm, RegisterAccount(name="Acme"), me)
    for n in range(40):
        execute(crm, UpdateAccount(account_id=account.id, name=f"Acme {n}"), me)
        execute(crm, MoveDeal(deal_id=deal.id, stage=f"S{(n + 1) % 5}"), me)
        # A user rotating tokens: its state holds them by id (keys a snapshot must keep).
        issued = execute(crm, IssueToken(user_id=owner.id, label=f"key {n}"), me)
        if n % 3:
            token_id = UUID(issued.shown_once["token"].split("_")[2])
            execute(crm, RevokeToken(user_id=owner.id, token_id=token_id), me)
    assert crm.snapshots is not None
    for record in (account.id, deal.id, owner.id):
        versions = [s.originator_version for s in crm.snapshots.get(record)]
        head = replayed(crm, record).version
        assert versions == list(range(EVERY, head + 1, EVERY))
        for version in range(1, head + 1):
            loaded: Aggregate = crm.repository.get(record, version=version)
            assert state(loaded) == state(replayed(crm, record, version)), version
        assert state(crm.repository.get(record)) == state(replayed(crm, record))
    crm.close()


def test_a_failing_snapshot_fails_nothing(
    snapshotting: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = snapshotting
    assert crm.snapshots is not None

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(crm.snapshots, "put", broken)
    system = Context(actor=Authority.system(), source="test")
    owner = execute(crm, InviteUser(email="o@example.com", name="O", role=Role.OWNER), system)
    me = Context(actor=crm.load(User, owner.id).authority, source="test")
    account = execute(crm, RegisterAccount(name="Acme"), me)
    for n in range(EVERY + 1):
        receipt = execute(crm, UpdateAccount(account_id=account.id, name=f"Acme {n}"), me)
        assert receipt.version == n + 2
    assert replayed(crm, account.id).version == EVERY + 2
    crm.close()
