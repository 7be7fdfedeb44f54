"""The pipeline board, driven by real commands on both stores: open deals per stage
with every field the board shows, totals per stage and currency, stage changes of
the pipeline (a re-weight re-weights every deal in the stage), deals leaving and
coming back, each deal's last interaction through corrections and retractions,
filters, per-stage paging, and a restart in the middle."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest

from commands.accounts import RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.contacts import CreateContact
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
from commands.interactions import CorrectInteraction, LogMeeting, LogNote, RetractInteraction
from commands.pipelines import (
    AddStage,
    ChangeStage,
    CreatePipeline,
    RenamePipeline,
    ReorderStages,
    StageSpec,
)
from domain.pipeline import Pipeline
from domain.roles import Role
from projections import board
from projections.board import Board
from projections.events import decode
from projections.host import ReadModels
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person, invite
from tests.projections.compare import assert_same_as_rebuilt

Read = Callable[[], duckdb.DuckDBPyConnection]

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PAST = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def read(crm: Crm) -> Iterator[Read]:
    """Catch the board up with the store and hand out a read connection."""
    reads = ReadModels(crm.recorder, None, {Board.name: Board})
    connections: list[duckdb.DuckDBPyConnection] = []

    def connection() -> duckdb.DuckDBPyConnection:
        reads.runner.catch_up()
        con = reads.store(Board.name).reader()
        connections.append(con)
        return con

    yield connection
    for con in connections:
        con.close()
    reads.close()


class Commands:
    def __init__(self, crm: Crm, person: Person) -> None:
        self.crm, self.person = crm, person

    def __call__(self, command: Payload) -> Receipt:
        return execute(self.crm, command, self.person.ctx)

    def pipeline(self, *stages: tuple[str, int], name: str = "Sales") -> tuple[UUID, list[UUID]]:
        specs = [StageSpec(name=n, probability=p) for n, p in stages]
        pipeline_id = self(CreatePipeline(name=name, stages=specs)).id
        return pipeline_id, [stage.id for stage in self.crm.load(Pipeline, pipeline_id).stages]

    def deal(self, pipeline_id: UUID, amount: str, currency: str = "EUR", **fields: Any) -> UUID:
        fields.setdefault("title", f"{amount} {currency}")
        command = OpenDeal(
            amount=Decimal(amount), currency=currency, pipeline_id=pipeline_id, **fields
        )
        return self(command).id

    def recorded_at(self, receipt: Receipt) -> datetime:
        """When the command's last event was recorded."""
        (notification,) = self.crm.recorder.select_notifications(receipt.position, 1)
        return datetime.fromisoformat(decode(notification).recorded_at)


@pytest.fixture
def do(crm: Crm, owner: Person) -> Commands:
    return Commands(crm, owner)


def view_of(read: Read, pipeline_id: UUID, now: datetime = NOW, **filters: Any) -> dict[str, Any]:
    con = read()
    assert_the_kept_totals_count_the_open_deals(con)
    view = board.board(con, str(pipeline_id), now, **filters)
    assert view is not None
    return view


def assert_the_kept_totals_count_the_open_deals(con: duckdb.DuckDBPyConnection) -> None:
    """``board_totals`` (kept as deals change) = the open deals aggregated afresh."""
    kept = con.execute(
        "SELECT stage_id, owner_id, currency, deals, amount FROM board_totals ORDER BY ALL"
    ).fetchall()
    counted = con.execute(
        "SELECT stage_id, owner_id, currency, count(*), sum(amount) FROM board_deals "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert kept == counted


def deals_by_stage(view: dict[str, Any]) -> dict[str, list[str]]:
    return {stage["name"]: [deal["title"] for deal in stage["items"]] for stage in view["stages"]}


def totals(rows: list[dict[str, Any]]) -> dict[str, tuple[int, Decimal, Decimal]]:
    return {t["currency"]: (t["deals"], t["amount"], t["weighted_amount"]) for t in rows}


def the_deal(view: dict[str, Any], deal_id: UUID) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        d for s in view["stages"] for d in s["items"] if d["deal_id"] == str(deal_id)
    ]
    assert len(found) == 1, found
    return found[0]


# What a deal shows


def test_an_open_deal_shows_everything_the_board_needs(
    do: Commands, owner: Person, read: Read
) -> None:
    account = do(RegisterAccount(name="Acme")).id
    contacts = [do(CreateContact(first_name=n)).id for n in ("Ann", "Bob")]
    pipeline_id, (lead, _) = do.pipeline(("Lead", 20), ("Proposal", 60))
    opened = do(
        OpenDeal(
            title="Acme rollout",
            amount=Decimal("1234.5678"),
            currency="EUR",
            pipeline_id=pipeline_id,
            account_id=account,
            contact_ids=contacts,
            expected_close_date=date(2030, 3, 31),
        )
    )
    entered = do.recorded_at(opened)

    view = view_of(read, pipeline_id, now=entered + timedelta(days=3, hours=23))

    deal = the_deal(view, opened.id)
    assert deal == {
        "deal_id": str(opened.id),
        "stage_id": str(lead),
        "title": "Acme rollout",
        "amount": Decimal("1234.5678"),
        "currency": "EUR",
        "probability": 20,
        "weighted_amount": Decimal("246.91356"),
        "owner_id": str(owner.user.id),
        "account_id": str(account),
        "account_name": "Acme",
        "contacts": 2,
        "expected_close_date": date(2030, 3, 31),
        "entered_position": opened.position,
        "stage_entered_at": entered,
        "days_in_stage": 3,
        "last_interaction_at": None,
    }
    assert view["name"] == "Sales"
    assert [s["name"] for s in view["stages"]] == ["Lead", "Proposal"]
    assert [s["deals"] for s in view["stages"]] == [1, 0]


def test_days_in_stage_count_from_the_last_stage_change(do: Commands, read: Read) -> None:
    pipeline_id, _ = do.pipeline(("Lead", 10), ("Proposal", 50))
    deal_id = do.deal(pipeline_id, "100")
    moved = do(MoveDeal(deal_id=deal_id, stage="Proposal"))
    entered = do.recorded_at(moved)

    view = view_of(read, pipeline_id, now=entered + timedelta(days=10, seconds=1))

    deal = the_deal(view, deal_id)
    assert (deal["stage_entered_at"], deal["days_in_stage"]) == (entered, 10)
    assert deal["entered_position"] == moved.position
    assert deal["probability"] == 50
    assert deals_by_stage(view) == {"Lead": [], "Proposal": ["100 EUR"]}
    # A board asked about a moment before the move shows no negative days.
    assert the_deal(view_of(read, pipeline_id, now=entered - DAY), deal_id)["days_in_stage"] == 0


def test_changes_to_a_deal_are_reflected(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    contact = do(CreateContact(first_name="Ann")).id
    pipeline_id, _ = do.pipeline(("Lead", 10))
    deal_id = do.deal(pipeline_id, "100", expected_close_date=date(2030, 1, 1))

    do(UpdateDeal(deal_id=deal_id, title="Renamed", amount=Decimal("250"), currency="USD"))
    do(UpdateDeal(deal_id=deal_id, expected_close_date=None, contact_ids=[contact]))
    do(ReassignDeal(deal_id=deal_id, owner_id=rep.user.id))

    deal = the_deal(view_of(read, pipeline_id), deal_id)
    assert (deal["title"], deal["amount"], deal["currency"]) == ("Renamed", Decimal(250), "USD")
    assert deal["weighted_amount"] == Decimal(25)
    assert deal["expected_close_date"] is None
    assert deal["contacts"] == 1
    assert deal["owner_id"] == str(rep.user.id)


def test_an_account_rename_shows_on_its_deals(do: Commands, read: Read) -> None:
    account = do(RegisterAccount(name="Acme")).id
    pipeline_id, _ = do.pipeline(("Lead", 10))
    deal_id = do.deal(pipeline_id, "100", account_id=account)
    closed = do.deal(pipeline_id, "200", account_id=account)
    do(LoseDeal(deal_id=closed))
    assert the_deal(view_of(read, pipeline_id), deal_id)["account_name"] == "Acme"

    do(UpdateAccount(account_id=account, name="Acme Group"))
    do(ReopenDeal(deal_id=closed))
    later = do.deal(pipeline_id, "300", account_id=account)

    view = view_of(read, pipeline_id)
    assert [the_deal(view, d)["account_name"] for d in (deal_id, closed, later)] == [
        "Acme Group"
    ] * 3


# Totals


def test_totals_are_per_stage_and_currency_and_never_mix_currencies(
    do: Commands, read: Read
) -> None:
    pipeline_id, _ = do.pipeline(("Lead", 10), ("Proposal", 50), ("Closing", 90))
    do.deal(pipeline_id, "100.10", "EUR")
    do.deal(pipeline_id, "200", "EUR")
    do.deal(pipeline_id, "1000", "USD")
    do.deal(pipeline_id, "40", "EUR", stage="Proposal")
    do.deal(pipeline_id, "7.5", "GBP", stage="Proposal")

    view = view_of(read, pipeline_id)

    lead, proposal, closing = view["stages"]
    assert totals(lead["totals"]) == {
        "EUR": (2, Decimal("300.10"), Decimal("30.01")),
        "USD": (1, Decimal(1000), Decimal(100)),
    }
    assert totals(proposal["totals"]) == {
        "EUR": (1, Decimal(40), Decimal(20)),
        "GBP": (1, Decimal("7.5"), Decimal("3.75")),
    }
    assert (closing["deals"], closing["totals"], closing["items"]) == (0, [], [])
    assert [s["deals"] for s in view["stages"]] == [3, 2, 0]
    assert view["deals"] == 5
    assert totals(view["totals"]) == {
        "EUR": (3, Decimal("340.10"), Decimal("50.01")),
        "GBP": (1, Decimal("7.5"), Decimal("3.75")),
        "USD": (1, Decimal(1000), Decimal(100)),
    }


# The pipeline's stages


def test_a_reweighted_stage_reweights_every_deal_in_it(do: Commands, read: Read) -> None:
    pipeline_id, (lead, _) = do.pipeline(("Lead", 10), ("Proposal", 50))
    first = do.deal(pipeline_id, "100")
    second = do.deal(pipeline_id, "300")
    other = do.deal(pipeline_id, "1000", stage="Proposal")

    do(ChangeStage(pipeline_id=pipeline_id, stage_id=lead, probability=25))

    view = view_of(read, pipeline_id)
    assert [the_deal(view, d)["probability"] for d in (first, second, other)] == [25, 25, 50]
    assert [the_deal(view, d)["weighted_amount"] for d in (first, second, other)] == [
        Decimal(25),
        Decimal(75),
        Decimal(500),
    ]
    assert view["stages"][0]["probability"] == 25
    assert totals(view["stages"][0]["totals"]) == {"EUR": (2, Decimal(400), Decimal(100))}
    assert totals(view["totals"]) == {"EUR": (3, Decimal(1400), Decimal(600))}


def test_stages_added_renamed_and_reordered_keep_the_pipeline_order(
    do: Commands, read: Read
) -> None:
    pipeline_id, (lead, proposal) = do.pipeline(("Lead", 10), ("Proposal", 50))
    deal_id = do.deal(pipeline_id, "100", stage="Proposal")
    qualified = do(AddStage(pipeline_id=pipeline_id, name="Qualified", probability=30, position=1))
    do(ChangeStage(pipeline_id=pipeline_id, stage_id=proposal, name="Offer"))
    do(RenamePipeline(pipeline_id=pipeline_id, name="New business"))

    view = view_of(read, pipeline_id)
    assert view["name"] == "New business"
    assert [(s["name"], s["position"], s["probability"]) for s in view["stages"]] == [
        ("Lead", 0, 10),
        ("Qualified", 1, 30),
        ("Offer", 2, 50),
    ]
    assert deals_by_stage(view) == {"Lead": [], "Qualified": [], "Offer": ["100 EUR"]}

    added = qualified.created["stage_id"]
    do(ReorderStages(pipeline_id=pipeline_id, stage_ids=[proposal, lead, added]))

    view = view_of(read, pipeline_id)
    assert [(s["name"], s["position"]) for s in view["stages"]] == [
        ("Offer", 0),
        ("Lead", 1),
        ("Qualified", 2),
    ]
    assert the_deal(view, deal_id)["stage_id"] == str(proposal)


# Leaving the board and coming back


def test_won_and_lost_deals_leave_the_board_and_reopened_ones_come_back(
    do: Commands, read: Read
) -> None:
    pipeline_id, _ = do.pipeline(("Lead", 10), ("Proposal", 50))
    won = do.deal(pipeline_id, "100", title="Won")
    lost = do.deal(pipeline_id, "200", title="Lost")
    do.deal(pipeline_id, "300", title="Open")
    contact = do(CreateContact(first_name="Ann")).id

    do(WinDeal(deal_id=won, reason="signed"))
    do(LoseDeal(deal_id=lost, reason="budget"))

    view = view_of(read, pipeline_id)
    assert deals_by_stage(view) == {"Lead": ["Open"], "Proposal": []}
    assert totals(view["totals"]) == {"EUR": (1, Decimal(300), Decimal(30))}

    # Contacts may change while closed; the deal comes back with them.
    do(UpdateDeal(deal_id=lost, contact_ids=[contact]))
    reopened = do(ReopenDeal(deal_id=lost, stage="Proposal"))

    view = view_of(read, pipeline_id)
    assert deals_by_stage(view) == {"Lead": ["Open"], "Proposal": ["Lost"]}
    deal = the_deal(view, lost)
    assert (deal["amount"], deal["contacts"], deal["probability"]) == (Decimal(200), 1, 50)
    assert deal["stage_entered_at"] == do.recorded_at(reopened)
    assert totals(view["totals"]) == {"EUR": (2, Decimal(500), Decimal(130))}


# Last interaction


def test_the_last_interaction_follows_logs_corrections_and_retractions(
    do: Commands, read: Read
) -> None:
    pipeline_id, _ = do.pipeline(("Lead", 10))
    deal_id = do.deal(pipeline_id, "100")
    other_id = do.deal(pipeline_id, "200")

    def last(deal: UUID) -> datetime | None:
        value: datetime | None = the_deal(view_of(read, pipeline_id), deal)["last_interaction_at"]
        return value

    early = do(LogNote(occurred_at=PAST, deal_id=deal_id, body="first")).id
    late = do(LogNote(occurred_at=PAST + 5 * DAY, deal_id=deal_id, body="second")).id
    do(LogNote(occurred_at=PAST + 2 * DAY, deal_id=deal_id, body="in between"))
    assert last(deal_id) == PAST + 5 * DAY

    # The latest is corrected to an earlier time: the next latest takes over.
    do(CorrectInteraction(interaction_id=late, occurred_at=PAST + DAY))
    assert last(deal_id) == PAST + 2 * DAY

    # An earlier one is corrected to the latest.
    do(CorrectInteraction(interaction_id=early, occurred_at=PAST + 3 * DAY))
    assert last(deal_id) == PAST + 3 * DAY

    # Moved to another deal: it leaves this one.
    do(CorrectInteraction(interaction_id=early, deal_id=other_id))
    assert last(deal_id) == PAST + 2 * DAY
    assert last(other_id) == PAST + 3 * DAY

    # Retracted: it no longer counts.
    do(RetractInteraction(interaction_id=early, reason="logged twice"))
    assert last(other_id) is None


def test_an_interaction_linked_to_a_deal_later_counts_with_its_time(
    do: Commands, read: Read
) -> None:
    account = do(RegisterAccount(name="Acme")).id
    pipeline_id, _ = do.pipeline(("Lead", 10))
    deal_id = do.deal(pipeline_id, "100")
    note = do(LogNote(occurred_at=PAST, account_id=account, body="about the account")).id
    assert the_deal(view_of(read, pipeline_id), deal_id)["last_interaction_at"] is None

    do(CorrectInteraction(interaction_id=note, deal_id=deal_id))
    assert the_deal(view_of(read, pipeline_id), deal_id)["last_interaction_at"] == PAST

    do(CorrectInteraction(interaction_id=note, deal_id=None))
    assert the_deal(view_of(read, pipeline_id), deal_id)["last_interaction_at"] is None


def test_a_closed_deal_keeps_counting_interactions_for_when_it_reopens(
    do: Commands, read: Read
) -> None:
    pipeline_id, _ = do.pipeline(("Lead", 10))
    deal_id = do.deal(pipeline_id, "100")
    do(WinDeal(deal_id=deal_id))
    do(LogMeeting(occurred_at=PAST, ends_at=PAST + timedelta(hours=1), deal_id=deal_id))
    do(ReopenDeal(deal_id=deal_id))

    assert the_deal(view_of(read, pipeline_id), deal_id)["last_interaction_at"] == PAST


# Filters and paging


def test_filters_by_owner_and_currency(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    pipeline_id, (lead,) = do.pipeline(("Lead", 10))
    do.deal(pipeline_id, "100", "EUR", title="mine EUR")
    do.deal(pipeline_id, "200", "USD", title="mine USD")
    do.deal(pipeline_id, "300", "EUR", title="rep EUR", owner_id=rep.user.id)

    by_rep = view_of(read, pipeline_id, owner=str(rep.user.id))
    assert deals_by_stage(by_rep) == {"Lead": ["rep EUR"]}
    assert totals(by_rep["totals"]) == {"EUR": (1, Decimal(300), Decimal(30))}

    in_eur = view_of(read, pipeline_id, currency="EUR")
    assert deals_by_stage(in_eur) == {"Lead": ["mine EUR", "rep EUR"]}
    assert in_eur["deals"] == 2

    mine_usd = view_of(read, pipeline_id, owner=str(owner.user.id), currency="USD")
    assert deals_by_stage(mine_usd) == {"Lead": ["mine USD"]}

    def paged(**filters: Any) -> list[str]:
        page = board.stage_deals(read(), str(pipeline_id), str(lead), NOW, **filters)
        assert page is not None
        return [deal["title"] for deal in page]

    assert paged(owner=str(rep.user.id)) == ["rep EUR"]
    assert paged(currency="EUR") == ["mine EUR", "rep EUR"]
    assert paged(owner=str(rep.user.id), currency="USD") == []


def test_a_full_stage_shows_its_first_deals_and_pages_through_the_rest(
    do: Commands, read: Read
) -> None:
    pipeline_id, (lead, _) = do.pipeline(("Lead", 10), ("Proposal", 50))
    titles = [f"deal {n}" for n in range(7)]
    for n, title in enumerate(titles):
        do.deal(pipeline_id, str(n + 1), "EUR" if n % 2 else "USD", title=title)

    view = view_of(read, pipeline_id, per_stage=3)
    stage = view["stages"][0]
    assert [d["title"] for d in stage["items"]] == titles[:3]
    assert stage["deals"] == 7
    assert totals(stage["totals"]) == {
        "EUR": (3, Decimal(12), Decimal("1.2")),
        "USD": (4, Decimal(16), Decimal("1.6")),
    }
    assert stage["next_after"] == stage["items"][-1]["entered_position"]
    assert view["stages"][1]["next_after"] is None

    seen: list[str] = []
    after = None
    while True:
        page = board.stage_deals(read(), str(pipeline_id), str(lead), NOW, after=after, limit=2)
        assert page is not None
        if not page:
            break
        seen += [d["title"] for d in page]
        after = page[-1]["entered_position"]
    assert seen == titles

    rest = board.stage_deals(read(), str(pipeline_id), str(lead), NOW, after=stage["next_after"])
    assert rest is not None
    assert [d["title"] for d in rest] == titles[3:]

    only_totals = view_of(read, pipeline_id, per_stage=0)["stages"][0]
    assert (only_totals["items"], only_totals["deals"]) == ([], 7)
    assert only_totals["next_after"] is None


def test_unknown_pipelines_and_stages_are_none(do: Commands, read: Read) -> None:
    pipeline_id, (lead, _) = do.pipeline(("Lead", 10), ("Proposal", 50))
    _, (other_stage,) = do.pipeline(("Other", 10), name="Other")
    unknown = "00000000-0000-4000-8000-000000000000"

    assert board.board(read(), unknown, NOW) is None
    assert board.stage_deals(read(), unknown, str(lead), NOW) is None
    assert board.stage_deals(read(), str(pipeline_id), str(other_stage), NOW) is None
    assert board.stage_deals(read(), str(pipeline_id), str(lead), NOW) == []


def test_pipelines_are_listed_with_their_stages_and_open_deals(do: Commands, read: Read) -> None:
    sales, (lead, proposal) = do.pipeline(("Lead", 10), ("Proposal", 50), name="Sales")
    renewals, (renewal,) = do.pipeline(("Renewal", 80), name="Renewals")
    do.deal(sales, "100")
    do.deal(sales, "100")
    do(WinDeal(deal_id=do.deal(renewals, "100")))

    assert board.pipelines(read()) == [
        {
            "pipeline_id": str(renewals),
            "name": "Renewals",
            "deals": 0,
            "stages": [
                {"stage_id": str(renewal), "name": "Renewal", "probability": 80, "position": 0}
            ],
        },
        {
            "pipeline_id": str(sales),
            "name": "Sales",
            "deals": 2,
            "stages": [
                {"stage_id": str(lead), "name": "Lead", "probability": 10, "position": 0},
                {"stage_id": str(proposal), "name": "Proposal", "probability": 50, "position": 1},
            ],
        },
    ]


# Restarts


def test_batches_and_restarts_give_the_same_board_as_a_rebuild(
    crm: Crm, do: Commands, tmp_path: Path
) -> None:
    """Every kind of event, applied a few at a time with a restart (a reload of the
    in-memory state from the tables) between batches, equals a rebuild from zero."""
    path = tmp_path / "board.duckdb"
    store = ReadStore(path, [Board()])

    def catch_up_and_restart() -> None:
        nonlocal store
        Runner(crm.recorder, [store], batch_size=3).catch_up()
        store.close()
        store = ReadStore(path, [Board()])

    account = do(RegisterAccount(name="Acme")).id
    pipeline_id, (lead, proposal) = do.pipeline(("Lead", 10), ("Proposal", 50))
    deal_id = do.deal(pipeline_id, "100", account_id=account)
    closed = do.deal(pipeline_id, "5", "USD")
    note = do(LogNote(occurred_at=PAST, deal_id=deal_id, body="x")).id
    catch_up_and_restart()

    do(MoveDeal(deal_id=deal_id, stage="Proposal"))
    do(ChangeStage(pipeline_id=pipeline_id, stage_id=proposal, probability=70, name="Offer"))
    closing = do(AddStage(pipeline_id=pipeline_id, name="Closing", probability=90, position=0))
    do(UpdateAccount(account_id=account, name="Acme Group"))
    do(LoseDeal(deal_id=closed))
    catch_up_and_restart()

    do(CorrectInteraction(interaction_id=note, occurred_at=PAST + DAY))
    do(LogNote(occurred_at=PAST, deal_id=closed, body="y"))
    do(ReopenDeal(deal_id=closed))
    do(RetractInteraction(interaction_id=note, reason="wrong deal"))
    do(
        ReorderStages(
            pipeline_id=pipeline_id, stage_ids=[proposal, lead, closing.created["stage_id"]]
        )
    )
    catch_up_and_restart()
    Runner(crm.recorder, [store], batch_size=2).catch_up()

    try:
        assert_same_as_rebuilt(crm.recorder, {Board.name: Board}, [store])
        con = store.reader()
        assert_the_kept_totals_count_the_open_deals(con)
        view = board.board(con, str(pipeline_id), NOW)
        con.close()
        assert view is not None
        assert deals_by_stage(view) == {"Offer": ["100 EUR"], "Lead": ["5 USD"], "Closing": []}
        assert the_deal(view, deal_id)["last_interaction_at"] is None
        assert the_deal(view, deal_id)["account_name"] == "Acme Group"
        assert the_deal(view, closed)["last_interaction_at"] == PAST
    finally:
        store.close()
