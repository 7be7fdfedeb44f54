"""Commands on deals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import Field

from commands.accounts import owner_or_actor
from commands.app import Crm
from commands.context import Context, Decision, Payload, Removal, authorize
from commands.loading import check_account, check_refs, check_user, load_permitted, load_ref
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource
from domain.pipeline import Pipeline
from domain.values import Money

#: What an amount written as a string looks like, in the OpenAPI schema (a number is
#: taken as well): the schema said any string, so clients that follow it sent "abc".
DECIMAL_STRING = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


def _decimal_string(schema: dict[str, Any]) -> None:
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "string":
            branch["pattern"] = DECIMAL_STRING


Amount = Field(
    description='a decimal string such as "12500.00"; never negative',
    json_schema_extra=_decimal_string,
)
Currency = Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")


class OpenDeal(Payload):
    PERMIT = (Resource.DEAL, Action.CREATE)
    title: str = Field(min_length=1, max_length=200)
    amount: Decimal = Amount
    currency: str = Currency
    pipeline_id: UUID
    stage: str | None = Field(default=None, description="stage id or name; default the first")
    account_id: UUID | None = None
    contact_ids: list[UUID] = Field(default=[], max_length=50)
    owner_id: UUID | None = Field(default=None, description="defaults to the acting user")
    expected_close_date: date | None = None


class StageMove(Payload):
    stage: str = Field(min_length=1, max_length=100, description="stage id or name")


class MoveDeal(StageMove):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


class DealChanges(Payload):
    """Only the fields present change. Amount and currency change together."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    amount: Decimal | None = Field(default=None, json_schema_extra=_decimal_string)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    expected_close_date: date | None = None
    contact_ids: list[UUID] | None = Field(default=None, max_length=50)


class UpdateDeal(DealChanges):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


class DealOwnerChange(Payload):
    owner_id: UUID


class ReassignDeal(DealOwnerChange):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


class Outcome(Payload):
    reason: str = Field(default="", max_length=1000)


class WinDeal(Outcome):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


class LoseDeal(Outcome):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


class Reopening(Payload):
    stage: str | None = Field(default=None, description="default: the stage it closed in")


class ReopenDeal(Reopening):
    PERMIT = (Resource.DEAL, Action.EDIT)
    deal_id: UUID


def new_deal(cmd: OpenDeal, owner_id: UUID, pipeline: Pipeline, id: UUID | None = None) -> Deal:
    """The deal ``cmd`` opens (the handler's and the importer's one way)."""
    return Deal.open(
        title=cmd.title,
        value=Money(cmd.amount, cmd.currency),
        pipeline=pipeline,
        owner_id=owner_id,
        stage=cmd.stage,
        account_id=cmd.account_id,
        contact_ids=cmd.contact_ids,
        expected_close_date=cmd.expected_close_date,
        id=id,
    )


def open_deal(cmd: OpenDeal, crm: Crm, ctx: Context) -> Decision:
    owner_id = owner_or_actor(cmd.owner_id, ctx)
    authorize(cmd, ctx, owner_id, None)
    check_user(crm, owner_id)
    check_account(crm, cmd.account_id, ctx.actor)
    check_refs(crm, Contact, cmd.contact_ids, ctx.actor)
    pipeline = load_ref(crm, Pipeline, cmd.pipeline_id, ctx.actor)
    deal = new_deal(cmd, owner_id, pipeline)
    return Decision(deal, created={"deal_id": deal.id})


def move_deal(cmd: MoveDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    deal.move_to(cmd.stage, crm.load(Pipeline, deal.pipeline_id))
    return Decision(deal)


def update_deal(cmd: UpdateDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    given = cmd.model_fields_set
    if "title" in given:
        if cmd.title is None:
            raise InvalidValueError("a deal's title cannot be cleared")
        deal.retitle(cmd.title)
    if given & {"amount", "currency"}:
        amount = cmd.amount if cmd.amount is not None else deal.amount
        currency = cmd.currency if cmd.currency is not None else deal.currency
        deal.change_value(Money(amount, currency))
    if "expected_close_date" in given:
        deal.change_close_date(cmd.expected_close_date)
    if cmd.contact_ids is not None:
        check_refs(crm, Contact, cmd.contact_ids, ctx.actor)
        deal.change_contacts(cmd.contact_ids)
    return Decision(deal)


def reassign_deal(cmd: ReassignDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    authorize(cmd, ctx, cmd.owner_id, deal.id)  # the new owner too
    check_user(crm, cmd.owner_id)
    deal.reassign(cmd.owner_id)
    return Decision(deal)


def win_deal(cmd: WinDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    deal.win(cmd.reason)
    return Decision(deal)


def lose_deal(cmd: LoseDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    deal.lose(cmd.reason)
    return Decision(deal)


def reopen_deal(cmd: ReopenDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    deal.reopen(crm.load(Pipeline, deal.pipeline_id), cmd.stage)
    return Decision(deal)


class RemoveDeal(Removal):
    PERMIT = (Resource.DEAL, Action.REMOVE)
    deal_id: UUID


def remove_deal(cmd: RemoveDeal, crm: Crm, ctx: Context) -> Decision:
    deal = load_permitted(crm, Deal, cmd.deal_id, cmd, ctx)
    deal.remove(cmd.reason)
    return Decision(deal)
