"""The analytics read model built in bulk equals the handlers' build, on hand-written
histories that reach its corners: stages inserted, renamed, re-weighted and reordered;
deals won, lost, reopened, reassigned, re-valued, their close date cleared;
interactions in other time zones across UTC midnight, logged by the system,
corrected (or not in their time) and retracted. And the handlers carry on from a
bulk build halfway."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands.app import Crm
from commands.context import Context, Payload, Receipt
from commands.deals import (
    LoseDeal,
    MoveDeal,
    OpenDeal,
    ReassignDeal,
    ReopenDeal,
    UpdateDeal,
    WinDeal,
)
from commands.handlers import execute
from commands.interactions import (
    CorrectInteraction,
    LogCall,
    LogEmail,
    LogMeeting,
    LogNote,
    LogSms,
    RetractInteraction,
)
from commands.pipelines import AddStage, ChangeStage, CreatePipeline, ReorderStages, StageSpec
from domain.pipeline import Pipeline
from domain.roles import Authority, Role
from projections.analytics import Analytics
from projections.bulk import build, stage
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person, invite
from tests.projections.compare import assert_same_as_rebuilt

FACTORIES = {Analytics.name: Analytics}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class History:
    def __init__(self, crm: Crm, owner: Person) -> None:
        self.crm, self.owner = crm, owner
        self.rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)

    def run(self, command: Payload, by: Person | None = None) -> Receipt:
        return execute(self.crm, command, (by or self.owner).ctx)

    def as_system(self, command: Payload) -> Receipt:
        return execute(self.crm, command, Context(actor=Authority.system(), source="cli"))

    def stage_ids(self, pipeline_id: UUID) -> list[UUID]:
        return [s.id for s in self.crm.load(Pipeline, pipeline_id).stages]

    def pipelines(self) -> UUID:
        """Two pipelines; the first's stages inserted at the front, the middle and the
        end, renamed, re-weighted and reordered (twice)."""
        first = self.run(
            CreatePipeline(
                name="Sales",
                stages=[
                    StageSpec(name="Lead", probability=10),
                    StageSpec(name="Won", probability=90),
                ],
            )
        ).id
        self.run(CreatePipeline(name="Renewals", stages=[StageSpec(name="Due", probability=50)]))
        self.run(AddStage(pipeline_id=first, name="Cold", probability=5, position=0))
        self.run(AddStage(pipeline_id=first, name="Demo", probability=40, position=2))
        self.run(AddStage(pipeline_id=first, name="Paper", probability=80))
        ids = self.stage_ids(first)
        self.run(ChangeStage(pipeline_id=first, stage_id=ids[2], name="Demo 2", probability=45))
        self.run(ReorderStages(pipeline_id=first, stage_ids=list(reversed(ids))))
        self.run(AddStage(pipeline_id=first, name="Late", probability=70, position=1))
        self.run(ChangeStage(pipeline_id=first, stage_id=ids[0], probability=1))
        ids = self.stage_ids(first)
        self.run(ReorderStages(pipeline_id=first, stage_ids=ids[1:] + ids[:1]))
        return first

    def deals(self, pipeline_id: UUID) -> None:
        a = self.run(
            OpenDeal(
                title="A",
                amount=Decimal("1000.125"),
                currency="EUR",
                pipeline_id=pipeline_id,
                expected_close_date=date(2024, 5, 31),
            )
        ).id
        b = self.run(
            OpenDeal(
                title="B",
                amount=Decimal("7"),
                currency="USD",
                pipeline_id=pipeline_id,
                stage="Demo 2",
                owner_id=self.rep.user.id,
            )
        ).id
        c = self.run(
            OpenDeal(title="C", amount=Decimal("1"), currency="GBP", pipeline_id=pipeline_id)
        ).id
        self.run(MoveDeal(deal_id=a, stage="Demo 2"))
        self.run(UpdateDeal(deal_id=a, amount=Decimal("2000.50"), currency="USD"))
        self.run(UpdateDeal(deal_id=a, expected_close_date=None))
        self.run(ReassignDeal(deal_id=a, owner_id=self.rep.user.id))
        self.run(LoseDeal(deal_id=a, reason="budget"))
        self.run(ReopenDeal(deal_id=a, stage="Paper"))
        self.run(UpdateDeal(deal_id=a, expected_close_date=date(2025, 1, 2)))
        self.run(WinDeal(deal_id=a))
        self.run(WinDeal(deal_id=b))
        self.run(ReopenDeal(deal_id=b))
        self.run(MoveDeal(deal_id=b, stage="Lead"))
        self.run(LoseDeal(deal_id=c))

    def interactions(self, pipeline_id: UUID) -> None:
        # The rep's deal: the rep logs against it too (a rep links only what they read).
        deal = self.run(
            OpenDeal(
                title="I",
                amount=Decimal("5"),
                currency="EUR",
                pipeline_id=pipeline_id,
                owner_id=self.rep.user.id,
            )
        ).id
        link: dict[str, Any] = {"deal_id": deal}
        call: dict[str, Any] = {
            **link,
            "direction": "outbound",
            "duration_seconds": 60,
            "outcome": "connected",
        }
        self.run(LogCall(occurred_at=at("2024-05-01T23:30:00-07:00"), **call))
        self.as_system(
            LogNote(occurred_at=at("2024-05-02T01:00:00+02:00"), body="by the system", **link)
        )
        email = self.run(
            LogEmail(
                occurred_at=at("2024-05-03T12:00:00.123456+00:00"), direction="inbound", **link
            ),
            by=self.rep,
        )
        sms = self.run(
            LogSms(occurred_at=at("2024-05-03T08:00:00Z"), direction="inbound", body="x", **link)
        )
        meeting = self.run(
            LogMeeting(
                occurred_at=at("2024-05-04T10:00:00Z"), ends_at=at("2024-05-04T11:00:00Z"), **link
            )
        )
        self.run(
            CorrectInteraction(interaction_id=email.id, occurred_at=at("2024-05-02T23:59:59-07:00"))
        )
        self.run(CorrectInteraction(interaction_id=email.id, subject="no time change"))
        self.run(
            CorrectInteraction(interaction_id=sms.id, occurred_at=at("2024-04-30T01:00:00+02:00"))
        )
        self.run(
            CorrectInteraction(interaction_id=sms.id, occurred_at=at("2024-04-29T01:00:00+02:00"))
        )
        self.run(CorrectInteraction(interaction_id=meeting.id, notes="moved later"))
        self.run(RetractInteraction(interaction_id=sms.id, reason="duplicate"))
        self.run(LogCall(occurred_at=at("2024-05-05T00:00:00+02:00"), **call), by=self.rep)


def bulk_store(crm: Crm, path: Path) -> ReadStore:
    store = ReadStore(path, [Analytics()])
    build(store, stage(crm.recorder))
    return store


def test_a_bulk_build_of_every_corner_equals_the_handlers(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    history = History(crm, owner)
    pipeline_id = history.pipelines()
    history.deals(pipeline_id)
    history.interactions(pipeline_id)
    store = bulk_store(crm, tmp_path / "bulk.duckdb")
    try:
        assert store.low_position() == crm.position()
        assert_same_as_rebuilt(crm.recorder, FACTORIES, [store])
        con = store.reader()
        assert con.execute("SELECT count(*) FROM analytics_interactions").fetchone() == (5,)
        assert con.execute(
            "SELECT user_id FROM analytics_interactions WHERE kind = 'note'"
        ).fetchone() == ("system",)
        con.close()
    finally:
        store.close()


@pytest.mark.parametrize("halfway", ["after the pipelines", "after the deals"])
def test_the_handlers_carry_on_from_a_bulk_build_halfway(
    crm: Crm, owner: Person, tmp_path: Path, halfway: str
) -> None:
    history = History(crm, owner)
    pipeline_id = history.pipelines()
    if halfway == "after the deals":
        history.deals(pipeline_id)
    store = bulk_store(crm, tmp_path / "bulk.duckdb")
    try:
        if halfway == "after the pipelines":
            history.deals(pipeline_id)
        history.interactions(pipeline_id)
        Runner(crm.recorder, [store], batch_size=3).catch_up()
        assert_same_as_rebuilt(crm.recorder, FACTORIES, [store])
    finally:
        store.close()


def test_a_bulk_build_of_nothing_is_empty(crm: Crm, tmp_path: Path) -> None:
    store = bulk_store(crm, tmp_path / "bulk.duckdb")
    try:
        assert_same_as_rebuilt(crm.recorder, FACTORIES, [store])
    finally:
        store.close()
