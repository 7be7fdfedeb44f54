"""The board built in bulk equals the board built by its handlers, on hand-written
event histories: what the commands produce (both stores), and what they cannot but the
handlers still define (a stage inserted past the end, a rename of an unknown stage, an
interaction logged for a deal before it opens, a deal opened before its account is
named, events of a deal never opened, corrections after a retraction). Each history is
also cut (the hand-written one at every position): a bulk build up to the cut, then a
restart and the handlers carrying on, must give what the handlers give alone."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

from eventsourcing.persistence import ApplicationRecorder

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
from commands.interactions import CorrectInteraction, LogCall, LogNote, RetractInteraction
from commands.pipelines import (
    AddStage,
    ChangeStage,
    CreatePipeline,
    RenamePipeline,
    ReorderStages,
    StageSpec,
)
from domain.interaction import CallOutcome
from domain.pipeline import Pipeline
from domain.values import Direction
from projections.board import Board
from projections.bulk import build, stage
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person
from tests.projections.compare import Content, content, differences, owners

FACTORIES = {Board.name: Board}
PAST = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def handlers_built(recorder: ApplicationRecorder, cuts: Sequence[int]) -> dict[int, Content]:
    """What the handlers hold at each cut (ascending), fed a few events at a time."""
    store = ReadStore(None, [Board()])
    runner = Runner(recorder, [store], batch_size=3)
    built: dict[int, Content] = {}
    try:
        for cut in cuts:
            runner.catch_up(stop=cut)
            built[cut] = content([store])
        return built
    finally:
        store.close()


def bulk_built_then_carried_on(
    recorder: ApplicationRecorder, cut: int, head: int
) -> tuple[Content, Content]:
    """What a bulk build up to ``cut`` holds, and what it holds once the handlers have
    carried on from it (with the memory ``load()`` gave them) up to ``head``."""
    store = ReadStore(None, [Board()])
    try:
        build(store, stage(recorder, upto=cut))
        built = content([store])
        Runner(recorder, [store], batch_size=3).catch_up(stop=head)
        return built, content([store])
    finally:
        store.close()


def assert_bulk_equals_handlers(
    recorder: ApplicationRecorder, cuts: Sequence[int] | None = None
) -> None:
    head = recorder.max_notification_id() or 0
    cuts = sorted({*(range(head + 1) if cuts is None else cuts), head})
    expected = handlers_built(recorder, cuts)
    assert expected[head]["board_deals"].rows, "the history should leave some deals open"
    for cut in cuts:
        built, carried_on = bulk_built_then_carried_on(recorder, cut, head)
        problems = differences(built, expected[cut], owners(FACTORIES))
        assert not problems, f"bulk up to {cut}:\n" + "\n".join(problems)
        problems = differences(carried_on, expected[head], owners(FACTORIES))
        assert not problems, f"bulk up to {cut}, handlers after:\n" + "\n".join(problems)


# Histories the commands write, on both stores


def test_a_command_history_builds_in_bulk_as_the_handlers_build_it(crm: Crm, owner: Person) -> None:
    def do(command: Payload) -> Receipt:
        return execute(crm, command, owner.ctx)

    acme = do(RegisterAccount(name="Acme")).id
    globex = do(RegisterAccount(name="Globex")).id
    ann = do(CreateContact(first_name="Ann")).id
    bob = do(CreateContact(first_name="Bob")).id
    specs = [StageSpec(name="Lead", probability=10), StageSpec(name="Proposal", probability=50)]
    pipeline_id = do(CreatePipeline(name="Sales", stages=specs)).id
    lead, proposal = (s.id for s in crm.load(Pipeline, pipeline_id).stages)
    other = do(CreatePipeline(name="Renewals", stages=specs[:1])).id

    def deal(amount: str, currency: str = "EUR", **fields: Any) -> UUID:
        return do(
            OpenDeal(
                title=f"{amount} {currency}",
                amount=Decimal(amount),
                currency=currency,
                pipeline_id=pipeline_id,
                **fields,
            )
        ).id

    first = deal("100.5", account_id=acme, contact_ids=[ann, bob])
    second = deal("200", expected_close_date=date(2030, 1, 31))
    third = deal("0.0001", "USD", account_id=globex, stage="Proposal")
    same_key = deal("300")
    renewal = do(OpenDeal(title="renewal", amount=Decimal(7), currency="GBP", pipeline_id=other)).id
    note = do(LogNote(occurred_at=PAST, deal_id=first, body="x")).id
    call = do(
        LogCall(
            occurred_at=datetime(2024, 3, 2, 11, 0, tzinfo=UTC),
            deal_id=second,
            direction=Direction.INBOUND,
            duration_seconds=60,
            outcome=CallOutcome.CONNECTED,
        )
    ).id
    loose = do(LogNote(occurred_at=PAST + 3 * DAY, account_id=acme, body="about Acme")).id

    do(MoveDeal(deal_id=first, stage="Proposal"))
    do(ChangeStage(pipeline_id=pipeline_id, stage_id=proposal, probability=70, name="Offer"))
    closing = do(AddStage(pipeline_id=pipeline_id, name="Closing", probability=90, position=0))
    signed = do(AddStage(pipeline_id=pipeline_id, name="Signed", probability=95))
    do(RenamePipeline(pipeline_id=pipeline_id, name="New business"))
    do(UpdateAccount(account_id=acme, name="Acme Group"))
    do(UpdateDeal(deal_id=second, title="second", amount=Decimal("250.25"), currency="USD"))
    do(UpdateDeal(deal_id=second, expected_close_date=None))
    do(ReassignDeal(deal_id=same_key, owner_id=owner.user.id))
    do(LoseDeal(deal_id=third))
    do(UpdateDeal(deal_id=first, contact_ids=[bob]))
    do(CorrectInteraction(interaction_id=note, occurred_at=PAST + 5 * DAY))
    do(CorrectInteraction(interaction_id=call, deal_id=first))
    do(CorrectInteraction(interaction_id=loose, deal_id=second))
    do(CorrectInteraction(interaction_id=loose, deal_id=None))
    do(LogNote(occurred_at=PAST, deal_id=third, body="y"))
    do(WinDeal(deal_id=same_key))
    do(ReopenDeal(deal_id=third, stage="Lead"))
    do(ReopenDeal(deal_id=same_key))
    do(RetractInteraction(interaction_id=note, reason="wrong deal"))
    order = [proposal, signed.created["stage_id"], lead, closing.created["stage_id"]]
    do(ReorderStages(pipeline_id=pipeline_id, stage_ids=order))
    do(LoseDeal(deal_id=renewal))
    do(UpdateAccount(account_id=globex, name="Globex Corp"))

    head = crm.position()
    assert_bulk_equals_handlers(crm.recorder, cuts=[0, head // 3, head // 2, head])


# Histories written by hand: what the handlers define beyond what the commands write


def hexid() -> str:
    return uuid4().hex


def wrapped(kind: str, data: Any) -> dict[str, Any]:
    return {"_type_": kind, "_data_": data}


def uid(hex32: str | None) -> dict[str, Any] | None:
    return None if hex32 is None else wrapped("uuid_hex", hex32)


def stage_of(hex32: str, name: str, probability: int) -> dict[str, Any]:
    return wrapped("stage", {"id": uid(hex32), "name": name, "probability": probability})


@dataclass(frozen=True)
class Stored:
    """A stored event as the recorders return it."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


@dataclass
class History:
    """Events written by hand into a list that reads like a recorder."""

    notifications: list[Stored] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    clock: Iterator[int] = field(default_factory=itertools.count)

    def __call__(self, aggregate: str, event: str, /, **fields: Any) -> None:
        version = self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        kind = event.split(".")[0]
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self.clock), microseconds=7)
        state: dict[str, Any] = {"timestamp": wrapped("datetime_iso", at.isoformat())}
        if version == 1:
            state["originator_topic"] = f"domain.{kind.lower()}:{kind}"
        state |= fields
        state["_meta"] = {"actor": "system", "request_id": None, "source": "test"}
        self.notifications.append(
            Stored(
                id=len(self.notifications) + 1,
                originator_id=UUID(aggregate),
                originator_version=version,
                topic=f"domain.{kind.lower()}:{event}",
                state=json.dumps(state, separators=(",", ":")).encode(),
            )
        )

    def max_notification_id(self) -> int | None:
        return len(self.notifications) or None

    def select_notifications(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Stored]:
        first = start if inclusive_of_start else start + 1
        last = len(self.notifications) if stop is None else stop
        return [n for n in self.notifications if first <= n.id <= last][:limit]


def deal_opened(
    pipeline: str, stage_id: str, owner: str, amount: str, account: str | None = None
) -> dict[str, Any]:
    return {
        "title": f"deal {amount}",
        "account_id": uid(account),
        "contact_ids": [uid(hexid())],
        "amount": wrapped("decimal_str", amount),
        "currency": "EUR",
        "pipeline_id": uid(pipeline),
        "stage_id": uid(stage_id),
        "owner_id": uid(owner),
        "expected_close_date": wrapped("date_iso", "2030-06-30"),
    }


def logged(deal: str | None, occurred_at: str) -> dict[str, Any]:
    return {
        "occurred_at": wrapped("datetime_iso", occurred_at),
        "contact_ids": [],
        "account_id": None,
        "deal_id": uid(deal),
        "logged_by": uid(hexid()),
        "body": "x",
    }


def test_a_hand_written_history_builds_in_bulk_as_the_handlers_build_it() -> None:
    e = History()
    pipeline, a, b, c, d = (hexid() for _ in range(5))
    account, late_account, owner, other_owner = (hexid() for _ in range(4))
    deal, early_deal, closed, never_opened = (hexid() for _ in range(4))
    talk, moved, unlinked, retracted = (hexid() for _ in range(4))

    e(account, "Account.Registered", name="Acme", owner_id=uid(owner), parent_id=None)
    e(pipeline, "Pipeline.Created", name="Sales", stages=[stage_of(a, "A", 10)])
    e(pipeline, "Pipeline.StageAdded", stage=stage_of(b, "B", 20), position=7)  # appended
    e(pipeline, "Pipeline.StageAdded", stage=stage_of(c, "C", 30), position=0)
    e(pipeline, "Pipeline.StageRenamed", stage_id=uid(d), name="nowhere", previous="?")
    e(pipeline, "Pipeline.StageReweighted", stage_id=uid(a), probability=15, previous=10)
    # An interaction logged for a deal before the deal is opened counts when it opens.
    e(talk, "Interaction.NoteLogged", **logged(early_deal, "2024-05-01T12:00:00+02:00"))
    e(moved, "Interaction.CallLogged", **logged(deal, "2024-05-03T08:00:00+00:00"))
    e(unlinked, "Interaction.EmailLogged", **logged(deal, "2024-05-09T08:00:00+00:00"))
    e(retracted, "Interaction.SmsLogged", **logged(deal, "2024-06-01T08:00:00+00:00"))
    e(deal, "Deal.Opened", **deal_opened(pipeline, a, owner, "10.25", account))
    e(early_deal, "Deal.Opened", **deal_opened(pipeline, a, owner, "5", late_account))
    e(closed, "Deal.Opened", **deal_opened(pipeline, b, owner, "7.5"))
    e(never_opened, "Deal.Retitled", title="ghost", previous="?")  # no such deal: ignored
    e(late_account, "Account.Registered", name="Late", owner_id=uid(owner), parent_id=None)
    e(account, "Account.DetailsChanged", name="Acme", website=None)  # the same name
    e(closed, "Deal.Won", reason="")
    e(closed, "Deal.ContactsChanged", contact_ids=[], previous=[])  # closed, still shown
    e(closed, "Deal.Reopened", stage_id=uid(c))
    e(closed, "Deal.Lost", reason="")
    e(deal, "Deal.StageChanged", stage_id=uid(b), previous=uid(a))
    e(deal, "Deal.AmountChanged", amount=wrapped("decimal_str", "11"), currency="USD")
    e(deal, "Deal.OwnerChanged", owner_id=uid(other_owner), previous=uid(owner))
    e(deal, "Deal.CloseDateChanged", expected_close_date=None, previous=None)
    e(early_deal, "Deal.Retitled", title="early", previous="deal 5")
    e(moved, "Interaction.Corrected", changes={"deal_id": uid(early_deal)}, previous={})
    e(unlinked, "Interaction.Corrected", changes={"deal_id": None}, previous={})
    e(
        unlinked,
        "Interaction.Corrected",
        changes={"occurred_at": wrapped("datetime_iso", "2024-05-10T00:00:00+00:00")},
        previous={},
    )
    e(retracted, "Interaction.Retracted", reason="twice")
    e(
        retracted,
        "Interaction.Corrected",  # after its retraction: ignored
        changes={"occurred_at": wrapped("datetime_iso", "2025-01-01T00:00:00+00:00")},
        previous={},
    )
    e(pipeline, "Pipeline.StagesReordered", order=[uid(b), uid(d), uid(a), uid(c)], previous=[])
    e(pipeline, "Pipeline.StageRenamed", stage_id=uid(b), name="Bee", previous="B")
    e(pipeline, "Pipeline.Renamed", name="Sales 2", previous="Sales")
    e(account, "Account.DetailsChanged", name="Acme Group", website=None)

    assert_bulk_equals_handlers(cast("ApplicationRecorder", e))
