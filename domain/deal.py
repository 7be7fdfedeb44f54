"""Deals: an opportunity with an amount, moving through the stages of a pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, RecordRemovedError, StateConflictError
from domain.pipeline import Pipeline
from domain.values import Money, Removable, check_name, check_removal_reason

MAX_REASON_LENGTH = 1000


class DealStatus(Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class DealError(StateConflictError):
    """Raised when a change conflicts with the deal's current state."""


class DealClosedError(DealError):
    """Raised when a won or lost deal would be changed (other than reopened)."""


class DealRemovedError(DealError, RecordRemovedError):
    """Raised when a removed deal would be changed or referred to."""


class DealNotClosedError(DealError):
    """Raised when an open deal would be reopened."""


class WrongPipelineError(InvalidValueError):
    """Raised when a deal is checked against a pipeline it does not belong to."""


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidValueError(f"a reason has at most {MAX_REASON_LENGTH} characters")
    return reason


class Deal(Aggregate, Removable):
    class Opened(Aggregate.Created):
        title: str
        account_id: UUID | None
        contact_ids: list[UUID]
        amount: Decimal
        currency: str
        pipeline_id: UUID
        stage_id: UUID
        owner_id: UUID
        expected_close_date: date | None

    class StageChanged(Aggregate.Event):
        stage_id: UUID
        previous: UUID

    class Retitled(Aggregate.Event):
        title: str
        previous: str

    class AmountChanged(Aggregate.Event):
        amount: Decimal
        currency: str
        previous_amount: Decimal
        previous_currency: str

    class OwnerChanged(Aggregate.Event):
        owner_id: UUID
        previous: UUID

    class CloseDateChanged(Aggregate.Event):
        expected_close_date: date | None
        previous: date | None

    class ContactsChanged(Aggregate.Event):
        contact_ids: list[UUID]
        previous: list[UUID]

    class Won(Aggregate.Event):
        reason: str

    class Lost(Aggregate.Event):
        reason: str

    class Reopened(Aggregate.Event):
        stage_id: UUID

    class Removed(Aggregate.Event):
        reason: str

    @event(Opened)
    def __init__(
        self,
        title: str,
        account_id: UUID | None,
        contact_ids: list[UUID],
        amount: Decimal,
        currency: str,
        pipeline_id: UUID,
        stage_id: UUID,
        owner_id: UUID,
        expected_close_date: date | None,
    ) -> None:
        self.title = title
        self.account_id = account_id
        self.contact_ids = list(contact_ids)
        self.amount = amount
        self.currency = currency
        self.pipeline_id = pipeline_id
        self.stage_id = stage_id
        self.owner_id = owner_id
        self.expected_close_date = expected_close_date
        self.status = DealStatus.OPEN
        self.close_reason: str | None = None
        self.removed = False

    @classmethod
    def open(
        cls,
        title: str,
        value: Money,
        pipeline: Pipeline,
        owner_id: UUID,
        stage: str | UUID | None = None,
        account_id: UUID | None = None,
        contact_ids: Sequence[UUID] = (),
        expected_close_date: date | None = None,
        id: UUID | None = None,
    ) -> Deal:
        """A new deal; ``id`` is given where it must be derived (an import), else new."""
        chosen = pipeline.first_stage if stage is None else pipeline.find_stage(stage)
        return cls._create(
            cls.Opened,
            id=id,
            title=check_name(title, "title"),
            account_id=account_id,
            contact_ids=list(dict.fromkeys(contact_ids)),
            amount=value.amount,
            currency=value.currency,
            pipeline_id=pipeline.id,
            stage_id=chosen.id,
            owner_id=owner_id,
            expected_close_date=expected_close_date,
        )

    @property
    def value(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status is DealStatus.OPEN

    def check_not_removed(self) -> None:
        if self.removed:
            raise DealRemovedError(f"deal {self.id} was removed")

    def check_is_open(self) -> None:
        self.check_not_removed()
        if not self.is_open:
            raise DealClosedError(f"deal is {self.status.value}; reopen it first")

    def check_pipeline(self, pipeline: Pipeline) -> None:
        if pipeline.id != self.pipeline_id:
            raise WrongPipelineError("that pipeline is not the deal's pipeline")

    def move_to(self, stage: str | UUID, pipeline: Pipeline) -> None:
        self.check_is_open()
        self.check_pipeline(pipeline)
        target = pipeline.find_stage(stage)
        if target.id != self.stage_id:
            self._change_stage(stage_id=target.id, previous=self.stage_id)

    @event(StageChanged)
    def _change_stage(self, stage_id: UUID, previous: UUID) -> None:
        self.stage_id = stage_id

    def retitle(self, title: str) -> None:
        self.check_is_open()
        title = check_name(title, "title")
        if title != self.title:
            self._retitle(title=title, previous=self.title)

    @event(Retitled)
    def _retitle(self, title: str, previous: str) -> None:
        self.title = title

    def change_value(self, value: Money) -> None:
        self.check_is_open()
        if value != self.value:
            self._change_amount(
                amount=value.amount,
                currency=value.currency,
                previous_amount=self.amount,
                previous_currency=self.currency,
            )

    @event(AmountChanged)
    def _change_amount(
        self, amount: Decimal, currency: str, previous_amount: Decimal, previous_currency: str
    ) -> None:
        self.amount = amount
        self.currency = currency

    def reassign(self, owner_id: UUID) -> None:
        self.check_is_open()
        if owner_id != self.owner_id:
            self._change_owner(owner_id=owner_id, previous=self.owner_id)

    @event(OwnerChanged)
    def _change_owner(self, owner_id: UUID, previous: UUID) -> None:
        self.owner_id = owner_id

    def change_close_date(self, expected_close_date: date | None) -> None:
        self.check_is_open()
        if expected_close_date != self.expected_close_date:
            self._change_close_date(
                expected_close_date=expected_close_date, previous=self.expected_close_date
            )

    @event(CloseDateChanged)
    def _change_close_date(self, expected_close_date: date | None, previous: date | None) -> None:
        self.expected_close_date = expected_close_date

    def change_contacts(self, contact_ids: Sequence[UUID]) -> None:
        self.check_not_removed()
        new = list(dict.fromkeys(contact_ids))
        if new != self.contact_ids:
            self._change_contacts(contact_ids=new, previous=list(self.contact_ids))

    @event(ContactsChanged)
    def _change_contacts(self, contact_ids: list[UUID], previous: list[UUID]) -> None:
        self.contact_ids = list(contact_ids)

    def win(self, reason: str = "") -> None:
        self.check_is_open()
        self._win(reason=check_reason(reason))

    @event(Won)
    def _win(self, reason: str) -> None:
        self.status = DealStatus.WON
        self.close_reason = reason

    def lose(self, reason: str = "") -> None:
        self.check_is_open()
        self._lose(reason=check_reason(reason))

    @event(Lost)
    def _lose(self, reason: str) -> None:
        self.status = DealStatus.LOST
        self.close_reason = reason

    def reopen(self, pipeline: Pipeline, stage: str | UUID | None = None) -> None:
        self.check_not_removed()
        if self.is_open:
            raise DealNotClosedError("deal is open already")
        self.check_pipeline(pipeline)
        target = pipeline.find_stage(self.stage_id if stage is None else stage)
        self._reopen(stage_id=target.id)

    @event(Reopened)
    def _reopen(self, stage_id: UUID) -> None:
        self.status = DealStatus.OPEN
        self.close_reason = None
        self.stage_id = stage_id

    def remove(self, reason: str = "") -> None:
        """Remove the deal for good: it leaves every current view; history keeps it."""
        self.check_not_removed()
        self._remove(reason=check_removal_reason(reason))

    @event(Removed)
    def _remove(self, reason: str) -> None:
        self.removed = True
