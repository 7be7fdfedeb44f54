"""The analytics read model, driven by real commands on both stores.

Recorded times come from the clock, so durations, periods and cycles are checked
against the recorded times the read model itself returns (``at`` of each transition);
interactions' days come from ``occurred_at``, which the test sets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest

from commands.app import Crm
from commands.context import Payload, Receipt
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
from commands.pipelines import ChangeStage, CreatePipeline, ReorderStages, StageSpec
from domain.pipeline import Pipeline
from domain.roles import Role
from projections import analytics
from projections.analytics import Analytics
from projections.host import ReadModels
from tests.conftest import Person, invite

TABLES = ("analytics_transitions", "analytics_deals", "analytics_stages", "analytics_interactions")


@dataclass
class World:
    crm: Crm
    owner: Person
    rep: Person

    def run(self, command: Payload, by: Person | None = None) -> Receipt:
        return execute(self.crm, command, (by or self.owner).ctx)

    def pipeline(self, *stages: tuple[str, int]) -> tuple[UUID, dict[str, UUID]]:
        receipt = self.run(
            CreatePipeline(
                name="Sales", stages=[StageSpec(name=n, probability=p) for n, p in stages]
            )
        )
        pipeline = self.crm.load(Pipeline, receipt.id)
        return pipeline.id, {stage.name: stage.id for stage in pipeline.stages}

    def deal(
        self,
        pipeline_id: UUID,
        amount: str = "1000.00",
        currency: str = "EUR",
        stage: str | None = None,
        close: str | None = None,
        owner: Person | None = None,
    ) -> UUID:
        return self.run(
            OpenDeal(
                title="Deal",
                amount=Decimal(amount),
                currency=currency,
                pipeline_id=pipeline_id,
                stage=stage,
                owner_id=(owner or self.owner).user.id,
                expected_close_date=date.fromisoformat(close) if close else None,
            )
        ).id


@pytest.fixture
def world(crm: Crm, owner: Person) -> World:
    return World(
        crm, owner, invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    )


@pytest.fixture
def read(world: World) -> Iterator[Any]:
    """Catch the read model up and give a connection to it."""
    models = ReadModels(world.crm.recorder, None, {Analytics.name: Analytics})
    cons: list[duckdb.DuckDBPyConnection] = []

    def reader() -> duckdb.DuckDBPyConnection:
        models.runner.catch_up()
        con = models.store(Analytics.name).reader()
        cons.append(con)
        return con

    yield reader
    for con in cons:
        con.close()
    models.close()


def transitions_of(con: duckdb.DuckDBPyConnection, deal_id: UUID) -> list[dict[str, Any]]:
    return analytics.stage_transitions(con, deal_id=str(deal_id), limit=1000)


# Stage transitions


def test_every_stage_change_and_outcome_is_a_transition_with_time_in_the_previous_stage(
    world: World, read: Any
) -> None:
    pipeline_id, stage = world.pipeline(("Lead", 10), ("Qualified", 40), ("Proposal", 70))
    deal = world.deal(pipeline_id)
    world.run(MoveDeal(deal_id=deal, stage="Qualified"))
    world.run(MoveDeal(deal_id=deal, stage="Proposal"))
    world.run(LoseDeal(deal_id=deal, reason="budget"))
    world.run(ReopenDeal(deal_id=deal, stage="Qualified"))
    world.run(ReassignDeal(deal_id=deal, owner_id=world.rep.user.id))
    world.run(WinDeal(deal_id=deal))

    rows = transitions_of(read(), deal)

    owner, rep = str(world.owner.user.id), str(world.rep.user.id)
    lead, qualified, proposal = (str(stage[n]) for n in ("Lead", "Qualified", "Proposal"))
    assert [
        (r["kind"], r["from_stage"], r["from_stage_name"], r["to_stage"], r["to_stage_name"])
        for r in rows
    ] == [
        ("opened", None, None, lead, "Lead"),
        ("moved", lead, "Lead", qualified, "Qualified"),
        ("moved", qualified, "Qualified", proposal, "Proposal"),
        ("lost", proposal, "Proposal", "lost", "lost"),
        ("reopened", "lost", "lost", qualified, "Qualified"),
        ("won", qualified, "Qualified", "won", "won"),
    ]
    # The owner at the time: the deal was reassigned before it was won.
    assert [r["owner_id"] for r in rows] == [owner] * 5 + [rep]
    assert {r["deal_id"] for r in rows} == {str(deal)}
    assert {r["pipeline_id"] for r in rows} == {str(pipeline_id)}
    times = [r["at"] for r in rows]
    assert times == sorted(times)
    assert rows[0]["seconds_in_previous"] is None
    assert [r["seconds_in_previous"] for r in rows[1:]] == [
        (later - earlier).total_seconds() for earlier, later in pairwise(times)
    ]
    positions = [r["position"] for r in rows]
    assert positions == sorted(set(positions))


def test_transitions_filter_by_pipeline_owner_time_and_page_by_position(
    world: World, read: Any
) -> None:
    first, _ = world.pipeline(("Lead", 10), ("Won over", 90))
    second, _ = world.pipeline(("Intro", 20), ("Demo", 50))
    a = world.deal(first)
    b = world.deal(second, owner=world.rep)
    world.run(MoveDeal(deal_id=a, stage="Won over"))
    world.run(MoveDeal(deal_id=b, stage="Demo"))
    world.run(WinDeal(deal_id=b))
    world.run(ReassignDeal(deal_id=a, owner_id=world.rep.user.id))
    world.run(LoseDeal(deal_id=a))
    con = read()

    everything = analytics.stage_transitions(con, limit=1000)
    assert [(r["deal_id"], r["kind"]) for r in everything] == [
        (str(a), "opened"),
        (str(b), "opened"),
        (str(a), "moved"),
        (str(b), "moved"),
        (str(b), "won"),
        (str(a), "lost"),
    ]
    in_second = analytics.stage_transitions(con, pipeline_id=str(second))
    assert [r["kind"] for r in in_second] == ["opened", "moved", "won"]
    by_rep = analytics.stage_transitions(con, owner_id=str(world.rep.user.id))
    assert [(r["deal_id"], r["kind"]) for r in by_rep] == [
        (str(b), "opened"),
        (str(b), "moved"),
        (str(b), "won"),
        (str(a), "lost"),
    ]
    third = everything[2]["at"]
    window = analytics.stage_transitions(
        con, since=third.isoformat(), until=everything[5]["at"].isoformat()
    )
    assert window == [r for r in everything if third <= r["at"] < everything[5]["at"]]
    assert window[0] == everything[2]

    pages: list[dict[str, Any]] = []
    after = None
    while True:
        page = analytics.stage_transitions(con, after=after, limit=4)
        if not page:
            break
        pages.extend(page)
        after = page[-1]["position"]
    assert pages == everything


def test_renamed_stages_show_their_current_names(world: World, read: Any) -> None:
    pipeline_id, stage = world.pipeline(("Lead", 10), ("Demo", 50))
    deal = world.deal(pipeline_id)
    world.run(MoveDeal(deal_id=deal, stage="Demo"))
    world.run(ChangeStage(pipeline_id=pipeline_id, stage_id=stage["Demo"], name="Trial"))

    rows = transitions_of(read(), deal)

    assert [r["to_stage_name"] for r in rows] == ["Lead", "Trial"]
    assert rows[1]["to_stage"] == str(stage["Demo"])


# Funnel


def test_funnel_counts_deals_that_reached_each_stage_or_a_later_one(
    world: World, read: Any
) -> None:
    pipeline_id, stage = world.pipeline(("Lead", 10), ("Qualified", 40), ("Proposal", 70))
    skipped = world.deal(pipeline_id)  # Lead -> Proposal, lost
    world.run(MoveDeal(deal_id=skipped, stage="Proposal"))
    world.run(LoseDeal(deal_id=skipped))
    won = world.deal(pipeline_id)  # won from Lead: reached every stage
    world.run(WinDeal(deal_id=won))
    later = world.deal(pipeline_id, stage="Qualified")  # opened in Qualified, open
    fresh = world.deal(pipeline_id)  # Lead, open
    back = world.deal(pipeline_id)  # Lead -> Qualified, lost, reopened in Lead, open
    world.run(MoveDeal(deal_id=back, stage="Qualified"))
    world.run(LoseDeal(deal_id=back))
    world.run(ReopenDeal(deal_id=back, stage="Lead"))
    other, _ = world.pipeline(("Elsewhere", 50))
    world.deal(other)
    con = read()

    report = analytics.funnel(con, str(pipeline_id))

    assert report is not None
    assert {k: report[k] for k in ("pipeline_id", "deals", "open", "won", "lost")} == {
        "pipeline_id": str(pipeline_id),
        "deals": 5,
        "open": 3,
        "won": 1,
        "lost": 1,
    }
    assert [
        (
            s["stage_id"],
            s["name"],
            s["position"],
            s["reached"],
            s["conversion_to_next"],
            s["conversion_to_won"],
        )
        for s in report["stages"]
    ] == [
        (str(stage["Lead"]), "Lead", 0, 5, 4 / 5, 1 / 5),
        (str(stage["Qualified"]), "Qualified", 1, 4, 2 / 4, 1 / 4),
        (str(stage["Proposal"]), "Proposal", 2, 2, 1 / 2, 1 / 2),
    ]

    # Opened from the third deal on, before the fifth: "later" and "fresh".
    opened = {
        deal_id: transitions_of(con, deal_id)[0]["at"]
        for deal_id in (skipped, won, later, fresh, back)
    }
    window = analytics.funnel(
        con,
        str(pipeline_id),
        since=opened[later].isoformat(),
        until=opened[back].isoformat(),
    )
    assert window is not None
    assert (window["deals"], window["open"], window["won"], window["lost"]) == (2, 2, 0, 0)
    assert [
        (s["reached"], s["conversion_to_next"], s["conversion_to_won"]) for s in window["stages"]
    ] == [(2, 1 / 2, 0.0), (1, 0.0, 0.0), (0, None, None)]

    # Reordered stages: the funnel follows the pipeline's current order.
    world.run(
        ReorderStages(
            pipeline_id=pipeline_id,
            stage_ids=[stage["Lead"], stage["Proposal"], stage["Qualified"]],
        )
    )
    reordered = analytics.funnel(read(), str(pipeline_id))
    assert reordered is not None
    assert [(s["name"], s["reached"]) for s in reordered["stages"]] == [
        ("Lead", 5),
        ("Proposal", 4),  # skipped (Proposal), won, later, back (Qualified is now beyond)
        ("Qualified", 3),  # won, later, back
    ]


def test_funnel_of_an_unknown_pipeline_is_none(world: World, read: Any) -> None:
    world.pipeline(("Lead", 10))

    assert analytics.funnel(read(), "00000000-0000-0000-0000-000000000001") is None


# Win rate and sales cycle


def month(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def quarter(moment: datetime) -> str:
    return f"{moment.year:04d}-Q{(moment.month - 1) // 3 + 1}"


def test_win_rate_and_sales_cycle_count_each_deal_by_its_final_close(
    world: World, read: Any
) -> None:
    pipeline_id, _ = world.pipeline(("Lead", 10), ("Proposal", 60))
    won = world.deal(pipeline_id)
    world.run(MoveDeal(deal_id=won, stage="Proposal"))
    world.run(WinDeal(deal_id=won))
    lost = world.deal(pipeline_id)
    world.run(LoseDeal(deal_id=lost))
    won_then_lost = world.deal(pipeline_id)
    world.run(WinDeal(deal_id=won_then_lost))
    world.run(ReopenDeal(deal_id=won_then_lost))
    world.run(LoseDeal(deal_id=won_then_lost))
    reopened = world.deal(pipeline_id)  # lost, reopened, still open: not counted
    world.run(LoseDeal(deal_id=reopened))
    world.run(ReopenDeal(deal_id=reopened))
    handed_over = world.deal(pipeline_id)  # won by the rep it was handed to
    world.run(ReassignDeal(deal_id=handed_over, owner_id=world.rep.user.id))
    world.run(WinDeal(deal_id=handed_over))
    world.deal(pipeline_id)  # open: not counted
    con = read()

    def close(deal_id: UUID) -> tuple[datetime, float]:
        """The final close and the cycle in days, from the recorded transitions."""
        rows = transitions_of(con, deal_id)
        closed_at = rows[-1]["at"]
        return closed_at, (closed_at - rows[0]["at"]).total_seconds() / 86400

    owner, rep = str(world.owner.user.id), str(world.rep.user.id)
    closes = {
        deal_id: (who, outcome, *close(deal_id))
        for deal_id, who, outcome in [
            (won, owner, "won"),
            (lost, owner, "lost"),
            (won_then_lost, owner, "lost"),
            (handed_over, rep, "won"),
        ]
    }

    for period, cut in (("month", month), ("quarter", quarter)):
        expected: dict[tuple[str, str], list[tuple[str, float]]] = {}
        for who, outcome, closed_at, days in closes.values():
            expected.setdefault((cut(closed_at), who), []).append((outcome, days))
        rows = analytics.win_rate(con, period=period)  # type: ignore[arg-type]
        assert [(r["period"], r["owner_id"]) for r in rows] == sorted(expected)
        for row in rows:
            deals = expected[(row["period"], row["owner_id"])]
            wins = sum(1 for outcome, _ in deals if outcome == "won")
            assert (row["won"], row["lost"], row["closed"]) == (
                wins,
                len(deals) - wins,
                len(deals),
            )
            assert row["win_rate"] == pytest.approx(wins / len(deals))
            assert row["avg_cycle_days"] == pytest.approx(
                sum(days for _, days in deals) / len(deals)
            )

    # All closes happened within seconds: in one month unless the test ran across
    # a month boundary. The owner's figures over every period together:
    mine = analytics.win_rate(con, owner_id=owner)
    assert sum(r["won"] for r in mine) == 1
    assert sum(r["lost"] for r in mine) == 2
    assert {r["owner_id"] for r in mine} == {owner}

    # Closed before the final close of "won_then_lost": "won" and "lost" only.
    final = closes[won_then_lost][2]
    before = analytics.win_rate(con, owner_id=owner, until=final.isoformat())
    assert (sum(r["won"] for r in before), sum(r["lost"] for r in before)) == (1, 1)
    after = analytics.win_rate(con, since=final.isoformat())
    assert sorted((r["owner_id"], r["won"], r["lost"]) for r in after) == sorted(
        [(owner, 0, 1), (rep, 1, 0)]
    )


# Activity


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_interactions_are_counted_per_user_day_and_kind_as_corrected_and_retracted(
    world: World, read: Any
) -> None:
    pipeline_id, _ = world.pipeline(("Lead", 10))
    deal = world.deal(pipeline_id)
    links: dict[str, Any] = {"deal_id": deal}
    call: dict[str, Any] = {"direction": "outbound", "duration_seconds": 60, "outcome": "connected"}
    world.run(LogCall(occurred_at=at("2024-05-01T10:00:00+00:00"), **links, **call))
    # 23:30 at UTC-2 is 01:30 UTC the next day.
    world.run(
        LogCall(
            occurred_at=datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2))),
            **links,
            **call,
        )
    )
    world.run(LogEmail(occurred_at=at("2024-05-01T09:00:00+00:00"), direction="inbound", **links))
    note = world.run(LogNote(occurred_at=at("2024-05-01T11:00:00+00:00"), body="hi", **links))
    world.run(
        LogMeeting(
            occurred_at=at("2024-05-03T14:00:00+00:00"),
            ends_at=at("2024-05-03T15:00:00+00:00"),
            **links,
        )
    )
    sms = world.run(
        LogSms(occurred_at=at("2024-05-01T08:00:00+00:00"), direction="outbound", body="x", **links)
    )
    # The rep logs against a deal of their own (a rep links only what they may read).
    rep_links = {"deal_id": world.deal(pipeline_id, owner=world.rep)}
    world.run(
        LogCall(occurred_at=at("2024-05-01T12:00:00+00:00"), **rep_links, **call), by=world.rep
    )
    rep_note = world.run(
        LogNote(occurred_at=at("2024-05-02T12:00:00+00:00"), body="y", **rep_links), by=world.rep
    )
    # Moved a day back; a correction of another field leaves the day alone.
    world.run(CorrectInteraction(interaction_id=sms.id, occurred_at=at("2024-04-30T22:00:00Z")))
    world.run(CorrectInteraction(interaction_id=sms.id, body="corrected"))
    world.run(RetractInteraction(interaction_id=note.id, reason="duplicate"))
    world.run(
        CorrectInteraction(interaction_id=rep_note.id, occurred_at=at("2024-05-04T12:00:00Z")),
        by=world.rep,
    )
    world.run(RetractInteraction(interaction_id=rep_note.id, reason="wrong deal"), by=world.rep)
    con = read()

    owner, rep = str(world.owner.user.id), str(world.rep.user.id)
    expected = sorted(
        [
            (date(2024, 4, 30), owner, "sms", 1),
            (date(2024, 5, 1), owner, "call", 1),
            (date(2024, 5, 1), owner, "email", 1),
            (date(2024, 5, 1), rep, "call", 1),
            (date(2024, 5, 2), owner, "call", 1),
            (date(2024, 5, 3), owner, "meeting", 1),
        ]
    )

    def rows(**filters: Any) -> list[tuple[Any, ...]]:
        found = analytics.activity(con, limit=1000, **filters)
        return [(r["day"], r["user_id"], r["kind"], r["count"]) for r in found]

    assert rows() == expected
    assert rows(user_id=rep) == [(date(2024, 5, 1), rep, "call", 1)]
    assert rows(kind="call") == [r for r in expected if r[2] == "call"]
    assert rows(since=date(2024, 5, 1), until=date(2024, 5, 3)) == [
        r for r in expected if date(2024, 5, 1) <= r[0] < date(2024, 5, 3)
    ]

    world.run(LogCall(occurred_at=at("2024-05-01T18:00:00+00:00"), **links, **call))
    assert analytics.activity(read(), user_id=owner, kind="call", until=date(2024, 5, 2)) == [
        {"day": date(2024, 5, 1), "user_id": owner, "kind": "call", "count": 2}
    ]

    pages: list[tuple[Any, ...]] = []
    cursor: tuple[str, str, str] | None = None
    con = read()
    while True:
        page = analytics.activity(con, after=cursor, limit=2)
        if not page:
            break
        pages.extend((r["day"], r["user_id"], r["kind"], r["count"]) for r in page)
        last = page[-1]
        cursor = (last["day"].isoformat(), last["user_id"], last["kind"])
    assert pages == analytics_rows(con)


def analytics_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return [
        (r["day"], r["user_id"], r["kind"], r["count"]) for r in analytics.activity(con, limit=1000)
    ]


# Forecast


def forecast_rows(con: duckdb.DuckDBPyConnection, **filters: Any) -> list[tuple[Any, ...]]:
    return [
        (r["month"], r["owner_id"], r["currency"], r["deals"], r["amount"], r["weighted"])
        for r in analytics.forecast(con, **filters)
    ]


def ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Month (no month last), owner, currency."""
    return sorted(rows, key=lambda r: (r[0] is None, r[0] or "", r[1], r[2]))


def test_forecast_weighs_open_deals_by_close_month_owner_and_currency(
    world: World, read: Any
) -> None:
    pipeline_id, stage = world.pipeline(("Lead", 10), ("Qualified", 40), ("Proposal", 70))
    rep = world.rep
    f1 = world.deal(pipeline_id, "1000.00", close="2024-06-15")
    f2 = world.deal(pipeline_id, "2500.50", stage="Qualified", close="2024-06-30")
    f3 = world.deal(pipeline_id, "300", "USD", stage="Qualified", close="2024-06-01")
    f4 = world.deal(pipeline_id, "800", stage="Proposal", close="2024-07-10", owner=rep)
    f5 = world.deal(pipeline_id, "999.99")
    f6 = world.deal(pipeline_id, "5000", stage="Proposal", close="2024-08-01")
    world.run(WinDeal(deal_id=f6))
    owner, rep_id = str(world.owner.user.id), str(rep.user.id)

    assert forecast_rows(read()) == ordered(
        [
            ("2024-06", owner, "EUR", 2, Decimal("3500.50"), Decimal("1100.20")),
            ("2024-06", owner, "USD", 1, Decimal("300"), Decimal("120")),
            ("2024-07", rep_id, "EUR", 1, Decimal("800"), Decimal("560")),
            (None, owner, "EUR", 1, Decimal("999.99"), Decimal("99.999")),
        ]
    )

    world.run(ChangeStage(pipeline_id=pipeline_id, stage_id=stage["Lead"], probability=15))
    world.run(UpdateDeal(deal_id=f1, amount=Decimal("1200.00")))
    world.run(UpdateDeal(deal_id=f4, expected_close_date=date(2024, 6, 5)))
    world.run(ReassignDeal(deal_id=f2, owner_id=rep.user.id))
    world.run(LoseDeal(deal_id=f3))
    world.run(ReopenDeal(deal_id=f6))
    world.run(UpdateDeal(deal_id=f5, amount=Decimal("1000"), currency="USD"))
    con = read()

    assert forecast_rows(con) == ordered(
        [
            ("2024-06", owner, "EUR", 1, Decimal("1200"), Decimal("180")),
            ("2024-06", rep_id, "EUR", 2, Decimal("3300.50"), Decimal("1560.20")),
            ("2024-08", owner, "EUR", 1, Decimal("5000"), Decimal("3500")),
            (None, owner, "USD", 1, Decimal("1000"), Decimal("150")),
        ]
    )
    assert forecast_rows(con, currency="USD") == [
        (None, owner, "USD", 1, Decimal("1000"), Decimal("150"))
    ]
    assert forecast_rows(con, owner_id=rep_id) == [
        ("2024-06", rep_id, "EUR", 2, Decimal("3300.50"), Decimal("1560.20"))
    ]
    assert forecast_rows(con, from_month="2024-07") == [
        ("2024-08", owner, "EUR", 1, Decimal("5000"), Decimal("3500"))
    ]
    assert [r[:3] for r in forecast_rows(con, from_month="2024-06", to_month="2024-06")] == [
        r[:3] for r in ordered([("2024-06", owner, "EUR"), ("2024-06", rep_id, "EUR")])
    ]
    # A close date cleared: the deal moves to the "no month" row.
    world.run(UpdateDeal(deal_id=f6, expected_close_date=None))
    assert forecast_rows(read(), owner_id=owner, currency="EUR") == [
        ("2024-06", owner, "EUR", 1, Decimal("1200"), Decimal("180")),
        (None, owner, "EUR", 1, Decimal("5000"), Decimal("3500")),
    ]


def test_forecast_amounts_are_exact_decimals(world: World, read: Any) -> None:
    pipeline_id, _ = world.pipeline(("Lead", 33))
    world.deal(pipeline_id, "0.0001", close="2024-06-01")
    world.deal(pipeline_id, "100.0001", close="2024-06-02")

    ((row),) = analytics.forecast(read())

    assert row["amount"] == Decimal("100.0002")
    assert row["weighted"] == Decimal("33.000066")
    assert str(row["weighted"]) == "33.000066"


# Rebuild equivalence


def all_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
        for table in TABLES
    }


def test_built_in_small_batches_with_restarts_equals_built_at_once(
    world: World, tmp_path: Path
) -> None:
    pipeline_id, stage = world.pipeline(("Lead", 10), ("Qualified", 40))
    deal = world.deal(pipeline_id, close="2024-06-01")
    world.run(MoveDeal(deal_id=deal, stage="Qualified"))
    world.run(WinDeal(deal_id=deal))
    world.run(ReopenDeal(deal_id=deal))
    world.run(ChangeStage(pipeline_id=pipeline_id, stage_id=stage["Qualified"], probability=55))
    world.run(UpdateDeal(deal_id=deal, amount=Decimal("12.5")))
    world.run(LoseDeal(deal_id=deal))
    call = world.run(
        LogCall(
            occurred_at=at("2024-05-01T10:00:00+00:00"),
            deal_id=deal,
            direction="inbound",
            duration_seconds=1,
            outcome="busy",
        )
    )
    world.run(CorrectInteraction(interaction_id=call.id, occurred_at=at("2024-05-02T10:00:00Z")))
    note = world.run(LogNote(occurred_at=at("2024-05-01T10:00:00Z"), body="n", deal_id=deal))
    world.run(RetractInteraction(interaction_id=note.id, reason="oops"))

    at_once = ReadModels(world.crm.recorder, None, {Analytics.name: Analytics})
    head = at_once.runner.head()
    stop = 0
    while stop < head:
        stop = min(head, stop + 3)
        models = ReadModels(world.crm.recorder, tmp_path, {Analytics.name: Analytics}, batch_size=2)
        models.runner.catch_up(stop=stop)
        models.close()
    restarted = ReadModels(world.crm.recorder, tmp_path, {Analytics.name: Analytics})
    at_once.runner.catch_up()
    try:
        incremental = all_rows(restarted.store(Analytics.name).con)
        rebuilt = all_rows(at_once.store(Analytics.name).con)
        assert incremental == rebuilt
        assert all(rebuilt[table] for table in TABLES)
    finally:
        restarted.close()
        at_once.close()
