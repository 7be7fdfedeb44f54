"""Commands that log, correct and retract interactions."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from commands.app import Crm
from commands.context import Context, Decision, Payload, UtcDatetime, authorize
from commands.loading import check_refs, load_permitted, load_ref
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.errors import InvalidValueError
from domain.interaction import CallOutcome, Interaction, InteractionKind
from domain.permissions import Action, Resource
from domain.values import Direction

Text = Field(default="", max_length=100_000)
CLEARABLE = frozenset({"account_id", "deal_id"})


class LogInteraction(Payload):
    occurred_at: UtcDatetime = Field(description="when it happened, with a time zone")
    contact_ids: list[UUID] = Field(default=[], max_length=50)
    account_id: UUID | None = None
    deal_id: UUID | None = None

    KIND: ClassVar[InteractionKind]
    PERMIT = (Resource.INTERACTION, Action.CREATE)

    def details(self) -> dict[str, Any]:
        common = {"occurred_at", "contact_ids", "account_id", "deal_id"}
        return {k: v for k, v in self.model_dump().items() if k not in common}


class LogCall(LogInteraction):
    KIND = InteractionKind.CALL
    direction: Direction
    duration_seconds: int = Field(ge=0, le=7 * 24 * 3600)
    outcome: CallOutcome
    notes: str = Text


class LogEmail(LogInteraction):
    KIND = InteractionKind.EMAIL
    direction: Direction
    subject: str = Field(default="", max_length=1000)
    body: str = Text


class LogMeeting(LogInteraction):
    KIND = InteractionKind.MEETING
    ends_at: UtcDatetime
    title: str = Field(default="", max_length=500)
    attendees: list[str] = Field(default=[], max_length=200)
    notes: str = Text


class LogNote(LogInteraction):
    KIND = InteractionKind.NOTE
    body: str = Field(min_length=1, max_length=100_000)


class LogSms(LogInteraction):
    KIND = InteractionKind.SMS
    direction: Direction
    body: str = Field(min_length=1, max_length=2000)


class Correction(Payload):
    """The fields to correct, by name, with their right values."""

    occurred_at: UtcDatetime | None = None
    contact_ids: list[UUID] | None = Field(default=None, max_length=50)
    account_id: UUID | None = None
    deal_id: UUID | None = None
    direction: Direction | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    outcome: CallOutcome | None = None
    notes: str | None = Field(default=None, max_length=100_000)
    subject: str | None = Field(default=None, max_length=1000)
    body: str | None = Field(default=None, max_length=100_000)
    ends_at: UtcDatetime | None = None
    title: str | None = Field(default=None, max_length=500)
    attendees: list[str] | None = Field(default=None, max_length=200)


class CorrectInteraction(Correction):
    PERMIT = (Resource.INTERACTION, Action.EDIT)
    interaction_id: UUID


class Retraction(Payload):
    reason: str = Field(min_length=1, max_length=1000)


class RetractInteraction(Retraction):
    PERMIT = (Resource.INTERACTION, Action.EDIT)
    interaction_id: UUID


def check_links(
    crm: Crm,
    contact_ids: list[UUID],
    account_id: UUID | None,
    deal_id: UUID | None,
    ctx: Context,
) -> None:
    check_refs(crm, Contact, contact_ids, ctx.actor)
    if account_id is not None:
        load_ref(crm, Account, account_id, ctx.actor)
    if deal_id is not None:
        load_ref(crm, Deal, deal_id, ctx.actor)


def new_interaction(cmd: LogInteraction, ctx: Context, id: UUID | None = None) -> Interaction:
    """The interaction ``cmd`` logs (the handler's and the importer's one way)."""
    return Interaction.log(
        kind=cmd.KIND,
        occurred_at=cmd.occurred_at,
        now=ctx.now,
        logged_by=ctx.actor.user_id,
        contact_ids=cmd.contact_ids,
        account_id=cmd.account_id,
        deal_id=cmd.deal_id,
        id=id,
        **cmd.details(),
    )


def log_interaction(cmd: LogInteraction, crm: Crm, ctx: Context) -> Decision:
    # An interaction is whoever logs it's: the actor's own.
    authorize(cmd, ctx, ctx.actor.user_id, None)
    check_links(crm, cmd.contact_ids, cmd.account_id, cmd.deal_id, ctx)
    interaction = new_interaction(cmd, ctx)
    return Decision(interaction, created={"interaction_id": interaction.id})


def correct_interaction(cmd: CorrectInteraction, crm: Crm, ctx: Context) -> Decision:
    interaction = load_permitted(crm, Interaction, cmd.interaction_id, cmd, ctx)
    changes = {
        field: getattr(cmd, field) for field in cmd.model_fields_set if field != "interaction_id"
    }
    cleared = sorted(f for f, v in changes.items() if v is None and f not in CLEARABLE)
    if cleared:
        raise InvalidValueError(f"{', '.join(cleared)} cannot be cleared, only corrected")
    check_links(
        crm,
        changes.get("contact_ids") or [],
        changes.get("account_id"),
        changes.get("deal_id"),
        ctx,
    )
    interaction.correct(changes, now=ctx.now)
    return Decision(interaction)


def retract_interaction(cmd: RetractInteraction, crm: Crm, ctx: Context) -> Decision:
    interaction = load_permitted(crm, Interaction, cmd.interaction_id, cmd, ctx)
    interaction.retract(cmd.reason)
    return Decision(interaction)
