"""Deals: money, moving through a pipeline's stages, winning, losing, reopening."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.deal import (
    Deal,
    DealClosedError,
    DealNotClosedError,
    DealStatus,
    WrongPipelineError,
)
from domain.errors import InvalidValueError
from domain.pipeline import Pipeline, UnknownStageError
from domain.values import Money
from tests.domain.helpers import assert_no_new_events, given, only_event, refused

OWNER = uuid4()
EUR_5000 = Money(Decimal("5000.00"), "EUR")


def sales() -> Pipeline:
    return given(Pipeline.create("Sales", [("Lead", 10), ("Proposal", 50), ("Negotiation", 80)]))


def a_deal(pipeline: Pipeline, stage: str | None = None) -> Deal:
    return given(Deal.open("Big sale", EUR_5000, pipeline, owner_id=OWNER, stage=stage))


def won(deal: Deal) -> Deal:
    deal.win("signed")
    return given(deal)


def lost(deal: Deal) -> Deal:
    deal.lose("budget")
    return given(deal)


# --- money ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (Decimal("-0.01"), "EUR", "negative"),
        (Decimal("1.00001"), "EUR", "decimal places"),
        (Decimal("1e15"), "EUR", "below"),
        (Decimal("NaN"), "EUR", "finite"),
        (Decimal("Infinity"), "EUR", "finite"),
        (10.5, "EUR", "decimal"),
        (10, "EUR", "decimal"),
        (Decimal("10"), "eur", "ISO 4217"),
        (Decimal("10"), "EURO", "ISO 4217"),
        (Decimal("10"), "ABC", "ISO 4217"),
    ],
)
def test_money_refuses_what_is_not_an_amount_in_a_currency(
    amount: Any, currency: str, message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message):
        Money(amount, currency)


def test_money_allows_zero_and_four_decimal_places() -> None:
    assert Money(Decimal("0"), "JPY").amount == 0
    assert Money(Decimal("0.0001"), "USD").amount == Decimal("0.0001")


# --- open -----------------------------------------------------------------------


def test_opening_a_deal_puts_it_in_the_first_stage() -> None:
    pipeline = sales()
    account_id, contact_id = uuid4(), uuid4()

    deal = Deal.open(
        " Big sale ",
        EUR_5000,
        pipeline,
        owner_id=OWNER,
        account_id=account_id,
        contact_ids=[contact_id, contact_id],
        expected_close_date=date(2024, 9, 30),
    )

    opened = only_event(deal, Deal.Opened)
    assert opened.title == "Big sale"
    assert (opened.amount, opened.currency) == (Decimal("5000.00"), "EUR")
    assert (opened.pipeline_id, opened.stage_id) == (pipeline.id, pipeline.first_stage.id)
    assert (opened.owner_id, opened.account_id) == (OWNER, account_id)
    assert opened.contact_ids == [contact_id]
    assert opened.expected_close_date == date(2024, 9, 30)
    assert deal.status is DealStatus.OPEN


def test_opening_a_deal_in_a_named_stage_puts_it_there() -> None:
    pipeline = sales()

    deal = Deal.open("Big sale", EUR_5000, pipeline, owner_id=OWNER, stage="negotiation")

    assert only_event(deal, Deal.Opened).stage_id == pipeline.find_stage("Negotiation").id


def test_opening_a_deal_in_a_stage_given_by_id_puts_it_there() -> None:
    pipeline = sales()
    proposal = pipeline.find_stage("Proposal")

    deal = Deal.open("Big sale", EUR_5000, pipeline, owner_id=OWNER, stage=proposal.id)

    assert only_event(deal, Deal.Opened).stage_id == proposal.id


def test_a_deal_cannot_open_in_a_stage_its_pipeline_lacks() -> None:
    pipeline, other = sales(), sales()

    with pytest.raises(UnknownStageError):
        Deal.open("Big sale", EUR_5000, pipeline, owner_id=OWNER, stage="Won")
    with pytest.raises(UnknownStageError):
        Deal.open("Big sale", EUR_5000, pipeline, owner_id=OWNER, stage=other.first_stage.id)


def test_a_deal_needs_a_title() -> None:
    with pytest.raises(InvalidValueError, match="title"):
        Deal.open("  ", EUR_5000, sales(), owner_id=OWNER)


# --- move -----------------------------------------------------------------------


def test_moving_a_deal_records_the_new_and_previous_stage() -> None:
    pipeline = sales()
    deal = a_deal(pipeline)

    deal.move_to("Proposal", pipeline)

    changed = only_event(deal, Deal.StageChanged)
    assert changed.stage_id == pipeline.find_stage("Proposal").id
    assert changed.previous == pipeline.find_stage("Lead").id


def test_moving_a_deal_to_its_stage_records_nothing() -> None:
    pipeline = sales()
    deal = a_deal(pipeline, stage="Proposal")

    deal.move_to(pipeline.find_stage("Proposal").id, pipeline)

    assert_no_new_events(deal)


def test_a_deal_cannot_move_to_an_unknown_stage() -> None:
    pipeline = sales()
    deal = a_deal(pipeline)

    with refused(UnknownStageError, deal):
        deal.move_to("Won", pipeline)


def test_a_deal_cannot_move_along_another_pipeline() -> None:
    pipeline, other = sales(), sales()
    deal = a_deal(pipeline)

    with refused(WrongPipelineError, deal):
        deal.move_to("Proposal", other)


# --- other changes while open ---------------------------------------------------


def test_retitling_a_deal_records_the_new_and_previous_title() -> None:
    deal = a_deal(sales())

    deal.retitle("Bigger sale")
    deal.retitle("Bigger sale")

    retitled = only_event(deal, Deal.Retitled)
    assert (retitled.title, retitled.previous) == ("Bigger sale", "Big sale")


def test_changing_the_amount_records_the_new_and_previous_money() -> None:
    deal = a_deal(sales())

    deal.change_value(Money(Decimal("7500"), "USD"))

    changed = only_event(deal, Deal.AmountChanged)
    assert (changed.amount, changed.currency) == (Decimal("7500"), "USD")
    assert (changed.previous_amount, changed.previous_currency) == (Decimal("5000.00"), "EUR")
    assert deal.value == Money(Decimal("7500"), "USD")


def test_changing_the_amount_to_the_same_money_records_nothing() -> None:
    deal = a_deal(sales())

    deal.change_value(Money(Decimal("5000.00"), "EUR"))

    assert_no_new_events(deal)


def test_reassigning_a_deal_records_the_new_and_previous_owner() -> None:
    deal = a_deal(sales())
    new_owner = uuid4()

    deal.reassign(new_owner)

    changed = only_event(deal, Deal.OwnerChanged)
    assert (changed.owner_id, changed.previous) == (new_owner, OWNER)


def test_changing_the_close_date_records_the_new_and_previous_date() -> None:
    deal = a_deal(sales())

    deal.change_close_date(date(2024, 12, 31))

    changed = only_event(deal, Deal.CloseDateChanged)
    assert (changed.expected_close_date, changed.previous) == (date(2024, 12, 31), None)


def test_changing_contacts_records_them_without_duplicates() -> None:
    deal = a_deal(sales())
    first, second = uuid4(), uuid4()

    deal.change_contacts([first, second, first])

    changed = only_event(deal, Deal.ContactsChanged)
    assert (changed.contact_ids, changed.previous) == ([first, second], [])


# --- win, lose ------------------------------------------------------------------


def test_winning_a_deal_records_the_reason() -> None:
    deal = a_deal(sales())

    deal.win("  signed the contract ")

    assert only_event(deal, Deal.Won).reason == "signed the contract"
    assert deal.status is DealStatus.WON
    assert deal.close_reason == "signed the contract"


def test_losing_a_deal_records_the_reason() -> None:
    deal = a_deal(sales())

    deal.lose("no budget")

    assert only_event(deal, Deal.Lost).reason == "no budget"
    assert deal.status is DealStatus.LOST


def test_a_close_reason_has_at_most_a_thousand_characters() -> None:
    deal = a_deal(sales())

    with refused(InvalidValueError, deal):
        deal.win("x" * 1001)


CLOSED_CHANGES: dict[str, Callable[[Deal, Pipeline], None]] = {
    "move": lambda d, p: d.move_to("Proposal", p),
    "retitle": lambda d, p: d.retitle("Bigger sale"),
    "amount": lambda d, p: d.change_value(Money(Decimal("1"), "EUR")),
    "owner": lambda d, p: d.reassign(uuid4()),
    "close date": lambda d, p: d.change_close_date(date(2025, 1, 1)),
    "win": lambda d, p: d.win("again"),
    "lose": lambda d, p: d.lose("after all"),
}


@pytest.mark.parametrize("close", [won, lost], ids=["won", "lost"])
@pytest.mark.parametrize("change", CLOSED_CHANGES.values(), ids=CLOSED_CHANGES.keys())
def test_a_closed_deal_refuses_changes(
    close: Callable[[Deal], Deal], change: Callable[[Deal, Pipeline], None]
) -> None:
    pipeline = sales()
    deal = close(a_deal(pipeline))

    with refused(DealClosedError, deal, match="reopen it first"):
        change(deal, pipeline)


# --- reopen ---------------------------------------------------------------------


def test_reopening_a_closed_deal_puts_it_back_in_its_stage() -> None:
    pipeline = sales()
    deal = won(a_deal(pipeline, stage="Negotiation"))

    deal.reopen(pipeline)

    reopened = only_event(deal, Deal.Reopened)
    assert reopened.stage_id == pipeline.find_stage("Negotiation").id
    assert deal.status is DealStatus.OPEN
    assert deal.close_reason is None


def test_reopening_a_lost_deal_to_a_stage_puts_it_there() -> None:
    pipeline = sales()
    deal = lost(a_deal(pipeline, stage="Negotiation"))

    deal.reopen(pipeline, stage="lead")

    assert only_event(deal, Deal.Reopened).stage_id == pipeline.first_stage.id
    assert deal.stage_id == pipeline.first_stage.id


def test_a_reopened_deal_can_move_again() -> None:
    pipeline = sales()
    deal = won(a_deal(pipeline))
    deal.reopen(pipeline)
    given(deal)

    deal.move_to("Proposal", pipeline)

    assert only_event(deal, Deal.StageChanged).stage_id == pipeline.find_stage("Proposal").id


def test_only_a_closed_deal_can_be_reopened() -> None:
    pipeline = sales()
    deal = a_deal(pipeline)

    with refused(DealNotClosedError, deal, match="open already"):
        deal.reopen(pipeline)


def test_a_deal_cannot_be_reopened_on_another_pipeline() -> None:
    pipeline, other = sales(), sales()
    deal = won(a_deal(pipeline))

    with refused(WrongPipelineError, deal):
        deal.reopen(other, stage="Lead")


def test_a_deal_cannot_be_reopened_to_an_unknown_stage() -> None:
    pipeline = sales()
    deal = won(a_deal(pipeline))

    with refused(UnknownStageError, deal):
        deal.reopen(pipeline, stage="Won")
    assert deal.status is DealStatus.WON
