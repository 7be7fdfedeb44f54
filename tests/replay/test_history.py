"""A record's history shows, for every kind of event of every kind of record, exactly
the fields it changed, from what to what, with who did it, when and through what.

One scenario per kind of record sends real commands (``execute``) on SQLite and on
PostgreSQL and checks, after each command, the history entries it added. At the end
the event types seen are compared with every event type the domain declares (found by
introspection): a new event type without a case here fails the test.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from api.schemas import RECORD_KINDS, public_json
from commands.accounts import (
    ArchiveAccount,
    MoveAccount,
    ReassignAccount,
    RegisterAccount,
    RemoveAccount,
    RestoreAccount,
    UpdateAccount,
)
from commands.app import Crm
from commands.contacts import (
    ChangeLifecycleStage,
    CreateContact,
    EraseContact,
    LinkContactToAccount,
    ReassignContact,
    RemoveContact,
    TagContact,
    UntagContact,
    UpdateContact,
)
from commands.context import Context, Payload
from commands.deals import (
    LoseDeal,
    MoveDeal,
    OpenDeal,
    ReassignDeal,
    RemoveDeal,
    ReopenDeal,
    UpdateDeal,
    WinDeal,
)
from commands.errors import NotFoundError
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
from commands.pipelines import (
    AddStage,
    ChangeStage,
    CreatePipeline,
    RenamePipeline,
    ReorderStages,
    StageSpec,
)
from commands.roles import (
    CreateCustomRole,
    EditCustomRole,
    GrantCustomRole,
    RevokeCustomRole,
)
from commands.tasks import AssignTask, CompleteTask, CreateTask, ReopenTask, UpdateTask
from commands.users import (
    AssignManager,
    DeactivateUser,
    GrantRole,
    InviteUser,
    IssueToken,
    RevokeRole,
)
from commands.users import RevokeToken as RevokeTokenCommand
from domain.account import Account
from domain.contact import Contact, ErasureBasis, LifecycleStage
from domain.deal import Deal
from domain.errors import InvalidValueError
from domain.interaction import CallOutcome, Interaction
from domain.pipeline import Pipeline
from domain.roles import Role
from domain.task import RecordKind, Task
from domain.user import User
from domain.values import Direction
from projections.events import topic_name
from replay.records import (
    HistoryEntry,
    RecordNotFoundError,
    head_version,
    history,
    recorded_at,
)
from tests.conftest import Person, invite

Changes = dict[str, dict[str, Any]]


def declared_events(cls: type[Aggregate]) -> set[str]:
    """Every concrete event type the aggregate declares, as ``Deal.Won``: its nested
    event classes, without the ones eventsourcing adds to every aggregate (``Event``,
    ``Created``, unless declared) and without bases of other declared events."""
    declared = [
        value
        for value in vars(cls).values()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        # eventsourcing redefines each declared class as a subclass of itself
        and any(base.__qualname__ == value.__qualname__ for base in value.__bases__)
    ]
    ancestors = {
        base.__qualname__
        for value in declared
        for base in value.__mro__[1:]
        if base.__qualname__ != value.__qualname__
    }
    return {value.__qualname__ for value in declared} - ancestors


def c(before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after}


class Scenario:
    """Runs commands as one person and returns the history entries each one added."""

    def __init__(self, crm: Crm, actor: Person) -> None:
        self.crm = crm
        self.actor = actor
        self.seen: set[str] = set()

    def ctx(self) -> Context:
        return Context(actor=self.actor.user.authority, source="api", request_id="req-1")

    def do(
        self, cls: type[Aggregate], command: Payload, record_id: UUID | None = None
    ) -> tuple[UUID, list[HistoryEntry]]:
        before = head_version(self.crm, record_id) if record_id else 0
        receipt = execute(self.crm, command, self.ctx())
        page = history(self.crm, cls, receipt.id, public_json, after_version=before)
        for entry in page.entries:
            self.seen.add(entry.action)
            assert entry.actor == str(self.actor.user.id)
            assert entry.source == "api"
            assert entry.request_id == "req-1"
        assert page.next_after_version is None
        assert [e.version for e in page.entries] == list(range(before + 1, receipt.version + 1))
        return receipt.id, page.entries

    def changes(self, cls: type[Aggregate], command: Payload, record_id: UUID) -> Changes:
        """The changes of a command that writes one event, checking its type."""
        _, entries = self.do(cls, command, record_id)
        (entry,) = entries
        return entry.changes

    def expect(
        self, cls: type[Aggregate], command: Payload, record_id: UUID, action: str
    ) -> Changes:
        _, entries = self.do(cls, command, record_id)
        assert [e.action for e in entries] == [action]
        return entries[0].changes


def created(entries: list[HistoryEntry], action: str) -> Changes:
    (entry,) = entries
    assert entry.action == action
    assert entry.version == 1
    return entry.changes


# -- one scenario per kind of record ----------------------------------------------------


def accounts(s: Scenario, owner: str, rep: str) -> UUID:
    parent, _ = s.do(Account, RegisterAccount(name="Holding", owner_id=UUID(owner)))
    account, entries = s.do(
        Account,
        RegisterAccount(
            name="Acme", website="acme.example", industry="Manufacturing", country="DE"
        ),
    )
    assert created(entries, "Account.Registered") == {
        "name": c(None, "Acme"),
        "website": c(None, "acme.example"),
        "industry": c(None, "Manufacturing"),
        "country": c(None, "DE"),
        "owner_id": c(None, owner),
        "archived": c(None, False),
    }
    assert s.expect(
        Account,
        UpdateAccount(account_id=account, name="Acme GmbH", address="1 Main St"),
        account,
        "Account.DetailsChanged",
    ) == {"name": c("Acme", "Acme GmbH"), "address": c(None, "1 Main St")}
    assert s.expect(
        Account, ReassignAccount(account_id=account, owner_id=UUID(rep)), account,
        "Account.OwnerChanged",
    ) == {"owner_id": c(owner, rep)}  # fmt: skip
    assert s.expect(
        Account, MoveAccount(account_id=account, parent_id=parent), account,
        "Account.ParentChanged",
    ) == {"parent_id": c(None, str(parent))}  # fmt: skip
    assert s.expect(Account, ArchiveAccount(account_id=account), account, "Account.Archived") == {
        "archived": c(False, True)
    }
    assert s.expect(Account, RestoreAccount(account_id=account), account, "Account.Restored") == {
        "archived": c(True, False)
    }
    return account


def contacts(s: Scenario, owner: str, rep: str, account: UUID) -> UUID:
    contact, entries = s.do(
        Contact,
        CreateContact(
            first_name="Ada",
            last_name="Lovelace",
            emails=["ada@acme.example"],
            job_title="CTO",
            account_id=account,
            tags=["vip"],
        ),
    )
    assert created(entries, "Contact.Created") == {
        "first_name": c(None, "Ada"),
        "last_name": c(None, "Lovelace"),
        "emails": c(None, ["ada@acme.example"]),
        "phones": c(None, []),
        "job_title": c(None, "CTO"),
        "account_id": c(None, str(account)),
        "owner_id": c(None, owner),
        "tags": c(None, ["vip"]),
        "lifecycle_stage": c(None, "lead"),
    }
    assert s.expect(
        Contact,
        UpdateContact(contact_id=contact, job_title="CEO", phones=["+44 20 7946 0000"]),
        contact,
        "Contact.DetailsChanged",
    ) == {"phones": c([], ["+44 20 7946 0000"]), "job_title": c("CTO", "CEO")}
    assert s.expect(
        Contact, UpdateContact(contact_id=contact, emails=["ada@engine.example"]), contact,
        "Contact.EmailsChanged",
    ) == {"emails": c(["ada@acme.example"], ["ada@engine.example"])}  # fmt: skip
    assert s.expect(
        Contact, LinkContactToAccount(contact_id=contact, account_id=None), contact,
        "Contact.AccountChanged",
    ) == {"account_id": c(str(account), None)}  # fmt: skip
    assert s.expect(
        Contact, ReassignContact(contact_id=contact, owner_id=UUID(rep)), contact,
        "Contact.OwnerChanged",
    ) == {"owner_id": c(owner, rep)}  # fmt: skip
    assert s.expect(
        Contact, TagContact(contact_id=contact, tag="partner"), contact, "Contact.Tagged"
    ) == {"tags": c(["vip"], ["vip", "partner"])}
    assert s.expect(
        Contact, UntagContact(contact_id=contact, tag="vip"), contact, "Contact.Untagged"
    ) == {"tags": c(["vip", "partner"], ["partner"])}
    assert s.expect(
        Contact,
        ChangeLifecycleStage(contact_id=contact, stage=LifecycleStage.CUSTOMER),
        contact,
        "Contact.LifecycleStageChanged",
    ) == {"lifecycle_stage": c("lead", "customer")}
    return contact


def stage_list(*stages: tuple[UUID, str, int]) -> list[dict[str, Any]]:
    return [{"id": str(i), "name": n, "probability": p} for i, n, p in stages]


def pipelines(s: Scenario) -> UUID:
    specs = [StageSpec(name="Qualified", probability=20), StageSpec(name="Offer", probability=50)]
    pipeline, entries = s.do(Pipeline, CreatePipeline(name="Sales", stages=specs))
    a, b = (stage.id for stage in s.crm.load(Pipeline, pipeline).stages)
    assert created(entries, "Pipeline.Created") == {
        "name": c(None, "Sales"),
        "stages": c(None, stage_list((a, "Qualified", 20), (b, "Offer", 50))),
    }
    assert s.expect(
        Pipeline, RenamePipeline(pipeline_id=pipeline, name="New business"), pipeline,
        "Pipeline.Renamed",
    ) == {"name": c("Sales", "New business")}  # fmt: skip
    changes = s.expect(
        Pipeline, AddStage(pipeline_id=pipeline, name="Negotiation", probability=80), pipeline,
        "Pipeline.StageAdded",
    )  # fmt: skip
    n = s.crm.load(Pipeline, pipeline).stages[2].id
    two = [(a, "Qualified", 20), (b, "Offer", 50)]
    three = [*two, (n, "Negotiation", 80)]
    assert changes == {"stages": c(stage_list(*two), stage_list(*three))}
    assert s.expect(
        Pipeline, ChangeStage(pipeline_id=pipeline, stage_id=b, name="Proposal"), pipeline,
        "Pipeline.StageRenamed",
    ) == {
        "stages": c(stage_list(*three), stage_list(two[0], (b, "Proposal", 50), three[2]))
    }  # fmt: skip
    assert s.expect(
        Pipeline, ChangeStage(pipeline_id=pipeline, stage_id=b, probability=60), pipeline,
        "Pipeline.StageReweighted",
    ) == {
        "stages": c(
            stage_list(two[0], (b, "Proposal", 50), three[2]),
            stage_list(two[0], (b, "Proposal", 60), three[2]),
        )
    }  # fmt: skip
    assert s.expect(
        Pipeline, ReorderStages(pipeline_id=pipeline, stage_ids=[n, a, b]), pipeline,
        "Pipeline.StagesReordered",
    ) == {
        "stages": c(
            stage_list(two[0], (b, "Proposal", 60), three[2]),
            stage_list(three[2], two[0], (b, "Proposal", 60)),
        )
    }  # fmt: skip
    return pipeline


def removals(s: Scenario, pipeline: UUID) -> None:
    """Records removed for good: the removal is the last entry of their history."""
    account, _ = s.do(Account, RegisterAccount(name="Short-lived"))
    contact, _ = s.do(Contact, CreateContact(first_name="Gone", emails=["gone@x.example"]))
    deal, _ = s.do(
        Deal,
        OpenDeal(
            title="Gone", amount=Decimal(1), currency="EUR", pipeline_id=pipeline,
            account_id=account,
        ),
    )  # fmt: skip
    removed: list[tuple[type[Aggregate], Payload, UUID]] = [
        (Deal, RemoveDeal(deal_id=deal, reason="duplicate"), deal),
        (Contact, RemoveContact(contact_id=contact, reason="duplicate"), contact),
        (Account, RemoveAccount(account_id=account, reason="duplicate"), account),
    ]
    for cls, command, record in removed:
        # The action says it; no public field changes (a removed record reads 404 now).
        assert s.expect(cls, command, record, f"{cls.__name__}.Removed") == {}
    erasable, _ = s.do(Contact, CreateContact(first_name="Erasable", emails=["e@x.example"]))
    erasure = EraseContact(contact_id=erasable, basis=ErasureBasis.OBJECTION, reference="GDPR-17")
    # Every version reads erased from then on: the erasure itself changes no field.
    assert s.expect(Contact, erasure, erasable, "Contact.Erased") == {}
    (created_entry,) = history(s.crm, Contact, erasable, public_json, limit=1).entries
    assert created_entry.changes["first_name"] == {"before": None, "after": "[erased]"}


def deals(s: Scenario, owner: str, rep: str, pipeline: UUID, account: UUID, contact: UUID) -> UUID:
    stage = {st.name: st.id for st in s.crm.load(Pipeline, pipeline).stages}
    first, proposal, qualified = stage["Negotiation"], stage["Proposal"], stage["Qualified"]
    deal, entries = s.do(
        Deal,
        OpenDeal(
            title="Rollout",
            amount=Decimal("12500.00"),
            currency="EUR",
            pipeline_id=pipeline,
            account_id=account,
            contact_ids=[contact],
            expected_close_date=date(2026, 12, 31),
        ),
    )
    assert created(entries, "Deal.Opened") == {
        "title": c(None, "Rollout"),
        "account_id": c(None, str(account)),
        "contact_ids": c(None, [str(contact)]),
        "amount": c(None, "12500.00"),
        "currency": c(None, "EUR"),
        "pipeline_id": c(None, str(pipeline)),
        "stage_id": c(None, str(first)),
        "owner_id": c(None, owner),
        "expected_close_date": c(None, "2026-12-31"),
        "status": c(None, "open"),
    }
    assert s.expect(Deal, MoveDeal(deal_id=deal, stage="Proposal"), deal, "Deal.StageChanged") == {
        "stage_id": c(str(first), str(proposal))
    }
    assert s.expect(
        Deal, UpdateDeal(deal_id=deal, title="Rollout EMEA"), deal, "Deal.Retitled"
    ) == {"title": c("Rollout", "Rollout EMEA")}
    assert s.expect(
        Deal, UpdateDeal(deal_id=deal, amount=Decimal("15000"), currency="USD"), deal,
        "Deal.AmountChanged",
    ) == {"amount": c("12500.00", "15000"), "currency": c("EUR", "USD")}  # fmt: skip
    assert s.expect(
        Deal, ReassignDeal(deal_id=deal, owner_id=UUID(rep)), deal, "Deal.OwnerChanged"
    ) == {"owner_id": c(owner, rep)}
    assert s.expect(
        Deal, UpdateDeal(deal_id=deal, expected_close_date=date(2027, 1, 31)), deal,
        "Deal.CloseDateChanged",
    ) == {"expected_close_date": c("2026-12-31", "2027-01-31")}  # fmt: skip
    assert s.expect(
        Deal, UpdateDeal(deal_id=deal, contact_ids=[]), deal, "Deal.ContactsChanged"
    ) == {"contact_ids": c([str(contact)], [])}
    assert s.expect(Deal, WinDeal(deal_id=deal, reason="Best fit"), deal, "Deal.Won") == {
        "status": c("open", "won"),
        "close_reason": c(None, "Best fit"),
    }
    assert s.expect(Deal, ReopenDeal(deal_id=deal, stage="Qualified"), deal, "Deal.Reopened") == {
        "stage_id": c(str(proposal), str(qualified)),
        "status": c("won", "open"),
        "close_reason": c("Best fit", None),
    }
    assert s.expect(Deal, LoseDeal(deal_id=deal, reason="Budget"), deal, "Deal.Lost") == {
        "status": c("open", "lost"),
        "close_reason": c(None, "Budget"),
    }
    return deal


def interactions(s: Scenario, owner: str, contact: UUID, deal: UUID) -> None:
    monday = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    links = {"contact_ids": [contact], "deal_id": deal}
    common = {
        "occurred_at": c(None, "2026-03-02T09:30:00Z"),
        "contact_ids": c(None, [str(contact)]),
        "deal_id": c(None, str(deal)),
        "logged_by": c(None, owner),
        "retracted": c(None, False),
    }
    logged: list[tuple[Payload, str, dict[str, Any]]] = [
        (
            LogCall(
                occurred_at=monday, direction=Direction.OUTBOUND, duration_seconds=900,
                outcome=CallOutcome.CONNECTED, notes="Walked through the offer", **links,
            ),
            "call",
            {"direction": "outbound", "duration_seconds": 900, "outcome": "connected",
             "notes": "Walked through the offer"},
        ),
        (
            LogEmail(
                occurred_at=monday, direction=Direction.INBOUND, subject="Offer",
                body="Looks good", **links,
            ),
            "email",
            {"direction": "inbound", "subject": "Offer", "body": "Looks good"},
        ),
        (
            LogMeeting(
                occurred_at=monday, ends_at=monday + timedelta(hours=1), title="Kick-off",
                attendees=["ada@engine.example"], notes="", **links,
            ),
            "meeting",
            {"ends_at": "2026-03-02T10:30:00Z", "title": "Kick-off",
             "attendees": ["ada@engine.example"], "notes": ""},
        ),
        (LogNote(occurred_at=monday, body="Prefers mornings", **links), "note",
         {"body": "Prefers mornings"}),
        (
            LogSms(occurred_at=monday, direction=Direction.OUTBOUND, body="On my way", **links),
            "sms",
            {"direction": "outbound", "body": "On my way"},
        ),
    ]  # fmt: skip
    call: UUID | None = None
    for command, kind, details in logged:
        interaction, entries = s.do(Interaction, command)
        assert created(entries, f"Interaction.{kind.capitalize()}Logged") == {
            "kind": c(None, kind),
            **common,
            **{f"details.{k}": c(None, v) for k, v in details.items()},
        }
        # Logged after it happened: the entry says when it happened, too.
        assert entries[0].occurred_at == monday
        call = call or interaction
    assert call is not None
    tuesday = monday + timedelta(days=1)
    assert s.expect(
        Interaction,
        CorrectInteraction(interaction_id=call, occurred_at=tuesday, notes="Sent the offer"),
        call,
        "Interaction.Corrected",
    ) == {
        "occurred_at": c("2026-03-02T09:30:00Z", "2026-03-03T09:30:00Z"),
        "details.notes": c("Walked through the offer", "Sent the offer"),
    }
    assert s.expect(
        Interaction, RetractInteraction(interaction_id=call, reason="Wrong deal"), call,
        "Interaction.Retracted",
    ) == {"retracted": c(False, True), "retraction_reason": c(None, "Wrong deal")}  # fmt: skip


def tasks(s: Scenario, owner: str, rep: str, deal: UUID) -> None:
    due = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    task, entries = s.do(
        Task,
        CreateTask(
            title="Call back", due_at=due, assignee_id=UUID(rep), linked_kind=RecordKind.DEAL,
            linked_id=deal,
        ),
    )  # fmt: skip
    assert created(entries, "Task.Created") == {
        "title": c(None, "Call back"),
        "due_at": c(None, "2026-12-01T17:00:00Z"),
        "assignee_id": c(None, rep),
        "linked_kind": c(None, "deal"),
        "linked_id": c(None, str(deal)),
        "created_by": c(None, owner),
        "completed": c(None, False),
    }
    assert s.expect(
        Task, UpdateTask(task_id=task, title="Call Ada back"), task, "Task.Retitled"
    ) == {"title": c("Call back", "Call Ada back")}
    assert s.expect(
        Task, UpdateTask(task_id=task, due_at=due + timedelta(days=1)), task, "Task.DueChanged"
    ) == {"due_at": c("2026-12-01T17:00:00Z", "2026-12-02T17:00:00Z")}
    assert s.expect(
        Task, AssignTask(task_id=task, assignee_id=UUID(owner)), task, "Task.Reassigned"
    ) == {"assignee_id": c(rep, owner)}
    assert s.expect(Task, CompleteTask(task_id=task), task, "Task.Completed") == {
        "completed": c(False, True)
    }
    assert s.expect(Task, ReopenTask(task_id=task), task, "Task.Reopened") == {
        "completed": c(True, False)
    }


def users(s: Scenario) -> UUID:
    user, entries = s.do(User, InviteUser(email="Bo@Example.com", name="Bo", role=Role.MANAGER))
    first_token = str(next(iter(s.crm.load(User, user).tokens)))
    assert [(e.action, e.changes) for e in entries] == [
        (
            "User.Invited",
            {
                "email": c(None, "bo@example.com"),
                "name": c(None, "Bo"),
                "roles": c(None, []),
                "active": c(None, True),
                "token_ids": c(None, []),
                "custom_role_ids": c(None, []),
            },
        ),
        ("User.RoleGranted", {"roles": c([], ["manager"])}),
        ("User.TokenIssued", {"token_ids": c([], [first_token])}),
    ]
    assert s.expect(
        User, GrantRole(user_id=user, role=Role.SALES_REP), user, "User.RoleGranted"
    ) == {"roles": c(["manager"], ["manager", "sales_rep"])}
    assert s.expect(
        User, RevokeRole(user_id=user, role=Role.MANAGER), user, "User.RoleRevoked"
    ) == {"roles": c(["manager", "sales_rep"], ["sales_rep"])}
    _, entries = s.do(User, IssueToken(user_id=user, label="laptop"), user)
    second_token = str(list(s.crm.load(User, user).tokens)[1])
    assert [(e.action, e.changes) for e in entries] == [
        ("User.TokenIssued", {"token_ids": c([first_token], [first_token, second_token])})
    ]
    assert s.expect(
        User, RevokeTokenCommand(user_id=user, token_id=UUID(first_token)), user,
        "User.TokenRevoked",
    ) == {"token_ids": c([first_token, second_token], [second_token])}  # fmt: skip
    boss = str(s.actor.user.id)
    assert s.expect(
        User, AssignManager(user_id=user, manager_id=UUID(boss)), user, "User.ManagerChanged"
    ) == {"manager_id": c(None, boss)}
    spec = {"name": "Helper", "level": 5, "grants": {"deal": {"read": "own"}}}
    role = str(execute(s.crm, CreateCustomRole.model_validate(spec), s.ctx()).id)
    assert s.expect(
        User, GrantCustomRole(user_id=user, role_id=UUID(role)), user, "User.CustomRoleGranted"
    ) == {"custom_role_ids": c([], [role])}
    # A role's new level is its holders' too: an event of theirs, saved with the edit.
    before = head_version(s.crm, user)
    execute(s.crm, EditCustomRole(role_id=UUID(role), level=4), s.ctx())
    (followed,) = history(s.crm, User, user, public_json, after_version=before).entries
    s.seen.add(followed.action)
    assert (followed.action, followed.actor) == ("User.CustomRoleLevelChanged", boss)
    assert followed.changes == {}  # a user shows the roles held, not their levels
    assert s.expect(
        User, RevokeCustomRole(user_id=user, role_id=UUID(role)), user, "User.CustomRoleRevoked"
    ) == {"custom_role_ids": c([role], [])}
    assert s.expect(User, DeactivateUser(user_id=user), user, "User.Deactivated") == {
        "active": c(True, False),
        "token_ids": c([second_token], []),
    }
    return user


# -- the tests ----------------------------------------------------------------------------


@pytest.fixture
def rep(crm: Crm, owner: Person) -> Person:
    return invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)


def test_history_shows_every_kind_of_change_of_every_kind_of_record(
    crm: Crm, owner: Person, rep: Person
) -> None:
    s = Scenario(crm, owner)
    me, them = str(owner.user.id), str(rep.user.id)
    account = accounts(s, me, them)
    contact = contacts(s, me, them, account)
    pipeline = pipelines(s)
    deal = deals(s, me, them, pipeline, account, contact)
    interactions(s, me, contact, deal)
    tasks(s, me, them, deal)
    removals(s, pipeline)
    user = users(s)

    declared = set().union(*(declared_events(cls) for cls in RECORD_KINDS.values()))
    assert "Deal.Won" in declared
    assert "Interaction.Logged" not in declared
    assert "Deal.Created" not in declared
    assert "Contact.Created" in declared
    missing = sorted(declared - s.seen)
    assert not missing, f"event types without a history case here: {missing}"
    assert s.seen <= declared

    # A secret never shows: no token hash, in any form, anywhere in a user's history.
    text = json.dumps([vars(e) for e in history(crm, User, user, public_json).entries], default=str)
    assert "hash" not in text
    hashes = crm.load(User, owner.user.id).tokens.values()
    owner_text = json.dumps(
        [vars(e) for e in history(crm, User, owner.user.id, public_json).entries], default=str
    )
    assert hashes
    assert not any(h in owner_text for h in hashes)


def test_history_pages_by_version_and_names_events_as_stored(crm: Crm, owner: Person) -> None:
    s = Scenario(crm, owner)
    account, _ = s.do(Account, RegisterAccount(name="Acme"))
    for n in range(9):
        s.do(Account, UpdateAccount(account_id=account, name=f"Acme {n}"), account)
    pages = []
    after = 0
    while True:
        page = history(crm, Account, account, public_json, after_version=after, limit=4)
        pages.append([e.version for e in page.entries])
        if page.next_after_version is None:
            break
        after = page.next_after_version
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    # A page that starts mid-history has the right "before" (loaded at that version).
    (entry,) = history(crm, Account, account, public_json, after_version=5, limit=1).entries
    assert entry.changes == {"name": c("Acme 3", "Acme 4")}
    whole = history(crm, Account, account, public_json, limit=1000).entries
    stored = crm.recorder.select_events(account)
    assert [e.action for e in whole] == [topic_name(s.topic) for s in stored]
    assert [e.recorded_at for e in whole] == [
        recorded_at(crm, account, version) for version in range(1, 11)
    ]
    assert all(e.occurred_at is None for e in whole)
    # Nothing after the last version; no version after it; limits within 1..1000.
    last = history(crm, Account, account, public_json, after_version=10)
    assert last.entries == []
    assert last.next_after_version is None
    with pytest.raises(InvalidValueError, match="at version 10"):
        history(crm, Account, account, public_json, after_version=11)
    for limit in (0, 1001):
        with pytest.raises(InvalidValueError, match="limit"):
            history(crm, Account, account, public_json, limit=limit)


def test_history_of_an_unknown_record_or_of_the_wrong_kind_is_not_found(
    crm: Crm, owner: Person
) -> None:
    account = execute(crm, RegisterAccount(name="Acme"), owner.ctx).id
    with pytest.raises(RecordNotFoundError, match="no deal with id"):
        history(crm, Deal, account, public_json)
    with pytest.raises(RecordNotFoundError, match="no account with id"):
        history(crm, Account, UUID(int=7), public_json)
    execute(crm, UpdateAccount(account_id=account, name="Acme 2"), owner.ctx)
    with pytest.raises((RecordNotFoundError, NotFoundError)):
        history(crm, Deal, account, public_json, after_version=1)
