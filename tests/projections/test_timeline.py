"""The timeline read model, driven by real commands on both stores: interactions on
every record they are linked to, backdating, corrections moving them, retractions,
each record's own changes and its tasks, filters and keyset pages, and batches with
restarts giving the same rows as one batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands.accounts import (
    ArchiveAccount,
    MoveAccount,
    ReassignAccount,
    RegisterAccount,
    RestoreAccount,
    UpdateAccount,
)
from commands.app import Crm
from commands.contacts import (
    ChangeLifecycleStage,
    CreateContact,
    LinkContactToAccount,
    TagContact,
    UntagContact,
    UpdateContact,
)
from commands.context import Context, Payload
from commands.deals import LoseDeal, MoveDeal, OpenDeal, ReopenDeal, UpdateDeal, WinDeal
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
from commands.pipelines import ChangeStage, CreatePipeline, StageSpec
from commands.tasks import CompleteTask, CreateTask, ReopenTask, UpdateTask
from domain.contact import LifecycleStage
from domain.errors import InvalidValueError
from domain.roles import Role
from domain.task import RecordKind
from projections.host import ReadModels
from projections.runner import Runner
from projections.store import ReadStore
from projections.timeline import Timeline, record_known, timeline
from tests.conftest import Person, invite


def all_rows(store: ReadStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every timeline table, and the position, as stored."""
    con = store.reader()
    try:
        rows = {
            table.name: sorted(con.execute(f"SELECT * FROM {table.name}").fetchall(), key=repr)
            for table in store.projectors[0].tables
        }
        rows["position"] = [(store.position(Timeline.name),)]
        return rows
    finally:
        con.close()


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


@dataclass
class World:
    crm: Crm
    owner: Person
    account: UUID
    contact: UUID
    pipeline: UUID
    deal: UUID

    @property
    def ctx(self) -> Context:
        return self.owner.ctx

    def do(self, command: Payload) -> UUID:
        return execute(self.crm, command, self.ctx).id

    def entries(self, kind: str, record_id: UUID, **filters: Any) -> list[dict[str, Any]]:
        """The timeline as a fresh read model built from every event sees it."""
        reads = ReadModels(self.crm.recorder, None, {Timeline.name: Timeline})
        try:
            reads.runner.catch_up()
            con = reads.store(Timeline.name).reader()
            try:
                return timeline(con, kind, str(record_id), **filters)
            finally:
                con.close()
        finally:
            reads.close()

    def kinds_and_summaries(
        self, kind: str, record_id: UUID, **filters: Any
    ) -> list[tuple[str, str]]:
        rows = self.entries(kind, record_id, order="logged", oldest_first=True, **filters)
        return [(row["kind"], row["summary"]) for row in rows]


@pytest.fixture
def world(crm: Crm, owner: Person) -> World:
    ctx = owner.ctx
    account = execute(crm, RegisterAccount(name="Acme"), ctx).id
    contact = execute(
        crm, CreateContact(first_name="Ann", last_name="Lee", account_id=account), ctx
    ).id
    pipeline = execute(
        crm,
        CreatePipeline(
            name="Sales",
            stages=[
                StageSpec(name="Lead", probability=10),
                StageSpec(name="Proposal", probability=50),
            ],
        ),
        ctx,
    ).id
    deal = execute(
        crm,
        OpenDeal(
            title="Big deal",
            amount="1200.50",
            currency="EUR",
            pipeline_id=pipeline,
            account_id=account,
            contact_ids=[contact],
        ),
        ctx,
    ).id
    return World(crm, owner, account, contact, pipeline, deal)


def call(world: World, occurred_at: datetime, **links: Any) -> LogCall:
    return LogCall(
        occurred_at=occurred_at,
        direction="outbound",
        duration_seconds=250,
        outcome="connected",
        notes="Discussed pricing",
        **links,
    )


def interactions_of(world: World, kind: str, record_id: UUID, **filters: Any) -> list[Any]:
    return world.entries(kind, record_id, kinds=["interaction"], **filters)


def test_an_interaction_linked_to_a_contact_its_account_and_a_deal_is_on_all_three(
    world: World,
) -> None:
    interaction = world.do(
        call(
            world, at(4), contact_ids=[world.contact], account_id=world.account, deal_id=world.deal
        )
    )

    for kind, record_id in [
        ("contact", world.contact),
        ("account", world.account),
        ("deal", world.deal),
    ]:
        (entry,) = interactions_of(world, kind, record_id)
        assert entry["record_kind"] == kind
        assert entry["record_id"] == str(record_id)
        assert entry["category"] == "interaction"
        assert entry["kind"] == "call"
        assert entry["entity_kind"] == "interaction"
        assert entry["entity_id"] == str(interaction)
        assert entry["summary"] == "Outbound call, 4 min 10 s, connected"
        assert entry["occurred_at"] == at(4)
        assert entry["recorded_at"] > at(4)  # backdated: logged after it happened
        assert entry["actor"] == str(world.owner.user.id)
        assert entry["retracted"] is False
        assert entry["payload"] == {
            "interaction_id": str(interaction),
            "contact_ids": [str(world.contact)],
            "account_id": str(world.account),
            "deal_id": str(world.deal),
            "logged_by": str(world.owner.user.id),
            "direction": "outbound",
            "duration_seconds": 250,
            "notes": "Discussed pricing",
            "outcome": "connected",
            "corrected_at": None,
            "retraction_reason": None,
        }
    # Only where it is linked: another contact's timeline does not show it.
    other = world.do(CreateContact(first_name="Bob"))
    assert interactions_of(world, "contact", other) == []


def test_a_backdated_interaction_sits_by_when_it_happened_and_by_when_it_was_logged(
    world: World,
) -> None:
    on_contact = {"contact_ids": [world.contact]}
    email = world.do(
        LogEmail(occurred_at=at(10), direction="inbound", subject="Renewal", **on_contact)
    )
    # Logged after the e-mail, but happened five days before it.
    note = world.do(LogNote(occurred_at=at(5), body="Met at the fair", **on_contact))
    sms = world.do(LogSms(occurred_at=at(7), direction="outbound", body="Call me", **on_contact))

    def ids(**order: Any) -> list[str]:
        return [e["entity_id"] for e in interactions_of(world, "contact", world.contact, **order)]

    assert ids() == [str(email), str(sms), str(note)]  # by when it happened, newest first
    assert ids(oldest_first=True) == [str(note), str(sms), str(email)]
    assert ids(order="logged") == [str(sms), str(note), str(email)]
    assert ids(order="logged", oldest_first=True) == [str(email), str(note), str(sms)]
    # Both times are kept either way.
    by_logging = interactions_of(world, "contact", world.contact, order="logged")
    assert [e["occurred_at"] for e in by_logging] == [at(7), at(5), at(10)]
    logged = [e["recorded_at"] for e in by_logging]
    assert logged == sorted(logged, reverse=True)


def test_each_interaction_kind_has_its_summary_and_details(world: World) -> None:
    on_contact = {"contact_ids": [world.contact]}
    world.do(
        LogCall(
            occurred_at=at(1),
            direction="inbound",
            duration_seconds=3605,
            outcome="no_answer",
            **on_contact,
        )
    )
    world.do(LogEmail(occurred_at=at(2), direction="outbound", **on_contact))
    world.do(
        LogMeeting(
            occurred_at=at(3),
            ends_at=at(3, 10),
            title="Quarterly review",
            attendees=["ann@example.com"],
            **on_contact,
        )
    )
    world.do(LogNote(occurred_at=at(4), body="First line\nsecond line", **on_contact))
    world.do(LogSms(occurred_at=at(5), direction="inbound", body="x" * 150, **on_contact))

    rows = interactions_of(world, "contact", world.contact, oldest_first=True)

    assert [(r["kind"], r["summary"]) for r in rows] == [
        ("call", "Inbound call, 1 h 5 s, no answer"),
        ("email", "Outbound e-mail: (no subject)"),
        ("meeting", "Meeting: Quarterly review"),
        ("note", "Note: First line"),
        ("sms", "Inbound SMS: " + "x" * 99 + "…"),
    ]
    meeting = rows[2]["payload"]
    assert meeting["ends_at"] == "2024-03-03T10:00:00+00:00"
    assert meeting["attendees"] == ["ann@example.com"]
    assert rows[3]["payload"]["body"] == "First line\nsecond line"


def test_a_correction_moves_the_interaction_between_timelines_and_is_a_change(
    world: World,
) -> None:
    bob = world.do(CreateContact(first_name="Bob"))
    interaction = world.do(call(world, at(4), contact_ids=[world.contact], deal_id=world.deal))

    correction = execute(
        world.crm,
        CorrectInteraction(
            interaction_id=interaction, occurred_at=at(2), contact_ids=[bob], deal_id=None
        ),
        world.ctx,
    )

    # Gone from the contact and the deal it was wrongly linked to ...
    assert interactions_of(world, "contact", world.contact) == []
    assert interactions_of(world, "deal", world.deal) == []
    # ... on the contact it belongs to, as it was logged, at the corrected time.
    (entry,) = interactions_of(world, "contact", bob)
    assert entry["entity_id"] == str(interaction)
    assert entry["occurred_at"] == at(2)
    assert entry["payload"]["contact_ids"] == [str(bob)]
    assert entry["payload"]["deal_id"] is None
    assert entry["payload"]["corrected_at"] is not None
    # The correction is a change on every record linked before or after it.
    for kind, record_id in [("contact", world.contact), ("deal", world.deal), ("contact", bob)]:
        (change,) = world.entries(kind, record_id, kinds=["Interaction.Corrected"])
        assert change["position"] == correction.position
        assert change["category"] == "change"
        assert change["entity_id"] == str(interaction)
        assert change["occurred_at"] == change["recorded_at"]
        assert change["summary"] == "Call corrected: occurred at, contacts, deal"
        assert change["payload"] == {
            "interaction_id": str(interaction),
            "interaction_kind": "call",
            "changes": {
                "occurred_at": {
                    "before": "2024-03-04T09:00:00+00:00",
                    "after": "2024-03-02T09:00:00+00:00",
                },
                "contact_ids": {"before": [str(world.contact)], "after": [str(bob)]},
                "deal_id": {"before": str(world.deal), "after": None},
            },
        }
    assert interactions_of(world, "account", world.account) == []


def test_a_correction_of_details_rewrites_the_summary(world: World) -> None:
    email = world.do(
        LogEmail(
            occurred_at=at(4), direction="outbound", subject="Hello", contact_ids=[world.contact]
        )
    )
    world.do(CorrectInteraction(interaction_id=email, subject="Offer", account_id=world.account))

    for kind, record_id in [("contact", world.contact), ("account", world.account)]:
        (entry,) = interactions_of(world, kind, record_id)
        assert entry["summary"] == "Outbound e-mail: Offer"
        assert entry["occurred_at"] == at(4)
    (change,) = world.entries("account", world.account, kinds=["Interaction.Corrected"])
    assert change["summary"] == "E-mail corrected: account, subject"


def test_a_retraction_flags_the_interaction_which_is_hidden_unless_asked_for(
    world: World,
) -> None:
    links = {"contact_ids": [world.contact], "account_id": world.account}
    kept = world.do(LogNote(occurred_at=at(3), body="Keep me", **links))
    wrong = world.do(call(world, at(4), **links))
    world.do(CorrectInteraction(interaction_id=wrong, occurred_at=at(5)))
    retraction = execute(
        world.crm, RetractInteraction(interaction_id=wrong, reason="Logged twice"), world.ctx
    )

    for kind, record_id in [("contact", world.contact), ("account", world.account)]:
        shown = world.entries(kind, record_id)
        assert str(wrong) not in [e["entity_id"] for e in shown]
        assert [e["entity_id"] for e in shown if e["category"] == "interaction"] == [str(kept)]

        about_wrong = [
            e
            for e in world.entries(kind, record_id, include_retracted=True, order="logged")
            if e["entity_id"] == str(wrong)
        ]
        assert [(e["kind"], e["retracted"]) for e in about_wrong] == [
            ("Interaction.Retracted", True),
            ("Interaction.Corrected", True),
            ("call", True),
        ]
        retracted, _, the_call = about_wrong
        assert retracted["position"] == retraction.position
        assert retracted["summary"] == "Call retracted: Logged twice"
        assert retracted["payload"]["reason"] == "Logged twice"
        assert the_call["payload"]["retraction_reason"] == "Logged twice"
        assert the_call["occurred_at"] == at(5)


def test_the_changes_of_an_account_are_on_its_timeline(world: World, crm: Crm) -> None:
    colleague = invite(crm, "sam@example.com", Role.SALES_REP, world.owner.user.authority)
    parent = world.do(RegisterAccount(name="Holding"))
    world.do(UpdateAccount(account_id=world.account, name="Acme Ltd", website="acme.example"))
    world.do(UpdateAccount(account_id=world.account, country="DE"))
    world.do(ReassignAccount(account_id=world.account, owner_id=colleague.user.id))
    world.do(MoveAccount(account_id=world.account, parent_id=parent))
    world.do(MoveAccount(account_id=world.account, parent_id=None))
    world.do(ArchiveAccount(account_id=world.account))
    world.do(RestoreAccount(account_id=world.account))

    assert world.kinds_and_summaries("account", world.account) == [
        ("Account.Registered", "Account registered: Acme"),
        ("Account.DetailsChanged", "Renamed from Acme to Acme Ltd; also changed website"),
        ("Account.DetailsChanged", "Changed country"),
        ("Account.OwnerChanged", "Owner changed"),
        ("Account.ParentChanged", "Moved under Holding"),
        ("Account.ParentChanged", "No longer under Holding"),
        ("Account.Archived", "Account archived"),
        ("Account.Restored", "Account restored"),
    ]
    renamed = world.entries("account", world.account, kinds=["Account.DetailsChanged"])[-1]
    assert renamed["payload"] == {
        "changes": {
            "name": {"before": "Acme", "after": "Acme Ltd"},
            "website": {"before": None, "after": "acme.example"},
        }
    }
    owner_change = world.entries("account", world.account, kinds=["Account.OwnerChanged"])[0]
    assert owner_change["payload"] == {
        "owner_id": str(colleague.user.id),
        "previous": str(world.owner.user.id),
    }
    assert owner_change["occurred_at"] == owner_change["recorded_at"]
    # A record's changes stay on its own timeline.
    assert world.kinds_and_summaries("account", parent) == [
        ("Account.Registered", "Account registered: Holding")
    ]


def test_the_changes_of_a_contact_are_on_its_timeline(world: World) -> None:
    other = world.do(RegisterAccount(name="Globex"))
    world.do(UpdateContact(contact_id=world.contact, job_title="CTO"))
    world.do(UpdateContact(contact_id=world.contact, first_name="Anne"))
    world.do(UpdateContact(contact_id=world.contact, emails=["anne@example.com"]))
    world.do(LinkContactToAccount(contact_id=world.contact, account_id=other))
    world.do(LinkContactToAccount(contact_id=world.contact, account_id=None))
    world.do(TagContact(contact_id=world.contact, tag="VIP"))
    world.do(UntagContact(contact_id=world.contact, tag="vip"))
    world.do(ChangeLifecycleStage(contact_id=world.contact, stage=LifecycleStage.CUSTOMER))

    assert world.kinds_and_summaries("contact", world.contact) == [
        ("Contact.Created", "Contact created: Ann Lee"),
        ("Contact.DetailsChanged", "Changed job title"),
        ("Contact.DetailsChanged", "Renamed from Ann Lee to Anne Lee"),
        ("Contact.EmailsChanged", "E-mail addresses set to anne@example.com"),
        ("Contact.AccountChanged", "Linked to account Globex"),
        ("Contact.AccountChanged", "Unlinked from Globex"),
        ("Contact.Tagged", "Tagged vip"),
        ("Contact.Untagged", "Untagged vip"),
        ("Contact.LifecycleStageChanged", "Lifecycle stage changed from lead to customer"),
    ]
    created = world.entries("contact", world.contact, kinds=["Contact.Created"])[0]
    assert created["payload"]["account_name"] == "Acme"
    assert created["payload"]["first_name"] == "Ann"


def test_the_changes_of_a_deal_are_on_its_timeline(world: World) -> None:
    bob = world.do(CreateContact(first_name="Bob", last_name="Ray"))
    world.do(MoveDeal(deal_id=world.deal, stage="Proposal"))
    proposal = world.entries("deal", world.deal, kinds=["Deal.StageChanged"])[0]
    world.do(
        ChangeStage(
            pipeline_id=world.pipeline, stage_id=proposal["payload"]["stage_id"], name="Offer"
        )
    )
    world.do(UpdateDeal(deal_id=world.deal, title="Bigger deal", amount="2000"))
    world.do(UpdateDeal(deal_id=world.deal, expected_close_date="2024-06-30"))
    world.do(UpdateDeal(deal_id=world.deal, contact_ids=[world.contact, bob]))
    world.do(WinDeal(deal_id=world.deal, reason="Best price"))
    world.do(ReopenDeal(deal_id=world.deal))
    world.do(LoseDeal(deal_id=world.deal))

    assert world.kinds_and_summaries("deal", world.deal) == [
        ("Deal.Opened", "Deal opened: Big deal, 1200.50 EUR in Lead"),
        ("Deal.StageChanged", "Moved from Lead to Proposal"),
        ("Deal.Retitled", "Renamed from Big deal to Bigger deal"),
        ("Deal.AmountChanged", "Amount changed from 1200.50 EUR to 2000 EUR"),
        ("Deal.CloseDateChanged", "Expected close date changed from none to 2024-06-30"),
        ("Deal.ContactsChanged", "Contacts set to Ann Lee, Bob Ray"),
        ("Deal.Won", "Deal won: Best price"),
        ("Deal.Reopened", "Deal reopened in Offer"),  # the stage's name when it happened
        ("Deal.Lost", "Deal lost"),
    ]
    assert proposal["payload"]["stage_name"] == "Proposal"
    assert proposal["payload"]["previous_name"] == "Lead"


def test_tasks_linked_to_a_record_are_on_its_timeline(world: World) -> None:
    task = world.do(
        CreateTask(title="Send offer", linked_kind=RecordKind.DEAL, linked_id=world.deal)
    )
    world.do(UpdateTask(task_id=task, title="Send the offer", due_at=at(20)))
    world.do(CompleteTask(task_id=task))
    world.do(ReopenTask(task_id=task))
    world.do(CreateTask(title="Unlinked chore"))

    rows = world.entries(
        "deal",
        world.deal,
        kinds=["Task.Created", "Task.Completed", "Task.Reopened"],
        oldest_first=True,
    )
    assert [(r["kind"], r["summary"], r["entity_kind"]) for r in rows] == [
        ("Task.Created", "Task created: Send offer", "task"),
        ("Task.Completed", "Task completed: Send the offer", "task"),
        ("Task.Reopened", "Task reopened: Send the offer", "task"),
    ]
    assert {r["entity_id"] for r in rows} == {str(task)}
    assert rows[1]["payload"] == {
        "task_id": str(task),
        "title": "Send the offer",
        "completed_by": str(world.owner.user.id),
    }
    # Not on records it is not linked to.
    changes = world.entries("contact", world.contact, kinds=["change"])
    assert [r["kind"] for r in changes] == ["Contact.Created"]


@pytest.fixture
def busy(world: World) -> World:
    """A contact with three interactions and two changes besides its creation."""
    on_contact = {"contact_ids": [world.contact]}
    world.do(LogNote(occurred_at=at(9), body="Ninth", **on_contact))
    world.do(LogNote(occurred_at=at(3), body="Third", **on_contact))
    world.do(TagContact(contact_id=world.contact, tag="vip"))
    world.do(call(world, at(6), **on_contact))
    world.do(ChangeLifecycleStage(contact_id=world.contact, stage=LifecycleStage.CUSTOMER))
    return world


def test_kinds_filter_by_category_interaction_kind_or_event_name(busy: World) -> None:
    def kinds(*wanted: str) -> list[str]:
        rows = busy.entries("contact", busy.contact, kinds=list(wanted), order="logged")
        return [r["kind"] for r in rows]

    assert kinds("interaction") == ["call", "note", "note"]
    assert kinds("change") == [
        "Contact.LifecycleStageChanged",
        "Contact.Tagged",
        "Contact.Created",
    ]
    assert kinds("call", "Contact.Tagged") == ["call", "Contact.Tagged"]
    assert kinds("email") == []
    with pytest.raises(InvalidValueError, match="'planet'"):
        kinds("note", "planet")


def test_since_and_until_bound_the_time_of_the_chosen_order(busy: World) -> None:
    notes_and_calls = {"kinds": ["interaction"]}
    happened = busy.entries(
        "contact",
        busy.contact,
        since=at(3).isoformat(),
        until=at(9).isoformat(),
        **notes_and_calls,
    )
    assert [r["occurred_at"] for r in happened] == [at(6), at(3)]  # until is exclusive

    everything = busy.entries("contact", busy.contact, order="logged")
    logged = [r["recorded_at"] for r in everything]
    middle = busy.entries(
        "contact",
        busy.contact,
        order="logged",
        since=logged[3].isoformat(),
        until=logged[1].isoformat(),
    )
    assert middle == everything[2:4]
    # They happened in March 2024 and were logged later: since 2025 finds them by
    # when they were logged, not by when they happened.
    since_2025 = {"since": "2025-01-01T00:00:00+00:00", **notes_and_calls}
    assert busy.entries("contact", busy.contact, **since_2025) == []
    assert len(busy.entries("contact", busy.contact, order="logged", **since_2025)) == 3


@pytest.mark.parametrize("order", ["occurred", "logged"])
@pytest.mark.parametrize("oldest_first", [False, True])
def test_pages_after_a_key_walk_the_whole_timeline_once(
    busy: World, order: str, oldest_first: bool
) -> None:
    column = "occurred_at" if order == "occurred" else "recorded_at"
    whole = busy.entries("contact", busy.contact, order=order, oldest_first=oldest_first)
    assert len(whole) == 6
    walked: list[dict[str, Any]] = []
    after = None
    while True:
        page = busy.entries(
            "contact", busy.contact, order=order, oldest_first=oldest_first, after=after, limit=4
        )
        walked += page
        if len(page) < 4:
            break
        after = (page[-1][column].isoformat(), page[-1]["position"])
    assert walked == whole
    keys = [(r[column], r["position"]) for r in whole]
    assert keys == sorted(keys, reverse=not oldest_first)


def test_the_read_model_knows_which_records_it_has_seen(world: World) -> None:
    reads = ReadModels(world.crm.recorder, None, {Timeline.name: Timeline})
    try:
        reads.runner.catch_up()
        con = reads.store(Timeline.name).reader()
        assert record_known(con, "contact", str(world.contact))
        assert record_known(con, "deal", str(world.deal))
        assert not record_known(con, "deal", str(world.contact))  # another kind
        assert not record_known(con, "account", "00000000-0000-0000-0000-000000000000")
        with pytest.raises(InvalidValueError):
            timeline(con, "task", str(world.contact))
        con.close()
    finally:
        reads.close()


def test_applied_in_small_batches_with_restarts_it_equals_one_batch(
    world: World, tmp_path: Path
) -> None:
    bob = world.do(CreateContact(first_name="Bob"))
    links = {"contact_ids": [world.contact], "account_id": world.account}
    first = world.do(call(world, at(4), **links))
    world.do(CorrectInteraction(interaction_id=first, contact_ids=[bob], deal_id=world.deal))
    second = world.do(LogNote(occurred_at=at(2), body="Two", **links))
    world.do(CorrectInteraction(interaction_id=second, body="Second", occurred_at=at(1)))
    world.do(RetractInteraction(interaction_id=first, reason="Wrong call"))
    task = world.do(CreateTask(title="T", linked_kind=RecordKind.CONTACT, linked_id=bob))
    world.do(UpdateTask(task_id=task, title="Renamed task"))
    world.do(CompleteTask(task_id=task))
    world.do(MoveDeal(deal_id=world.deal, stage="Proposal"))
    world.do(UpdateAccount(account_id=world.account, name="Acme Ltd"))

    for batch_size in (1, 2, 3):
        path = tmp_path / f"timeline-{batch_size}.duckdb"
        head = world.crm.position()
        while True:
            store = ReadStore(path, [Timeline()])  # a restart: state reloaded by load()
            try:
                if store.position(Timeline.name) >= head:
                    stepwise = all_rows(store)
                    break
                Runner(world.crm.recorder, [store], batch_size=batch_size).step()
            finally:
                store.close()
        once = ReadStore(None, [Timeline()])
        try:
            Runner(world.crm.recorder, [once], batch_size=10_000).catch_up()
            assert stepwise == all_rows(once)
        finally:
            once.close()
    # And the rows are the ones expected (not just equal): the retracted call moved to Bob.
    assert [
        (r["kind"], r["retracted"])
        for r in world.entries("contact", bob, order="logged", include_retracted=True)
    ] == [
        ("Task.Completed", False),
        ("Task.Created", False),
        ("Interaction.Retracted", True),
        ("Interaction.Corrected", True),
        ("call", True),
        ("Contact.Created", False),
    ]
