"""The timeline built in bulk equals the timeline its handlers build, on hand-written
histories the property test (``test_bulk.py``) seldom or never makes: awkward text
(control characters, Unicode whitespace and line breaks, lines around the excerpt's
100 characters), corrections moving an interaction between records and retracted
after, tasks retitled, stages added and renamed, accounts moved and unlinked.

Also: the SQL's notion of whitespace and line breaks is Python's, and the fields the
bulk build writes for each event are the fields its domain event has.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any
from uuid import UUID

import duckdb
import pytest

from commands.accounts import MoveAccount, RegisterAccount, UpdateAccount
from commands.app import Crm
from commands.contacts import CreateContact, LinkContactToAccount, UpdateContact
from commands.context import Payload
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
from commands.pipelines import AddStage, ChangeStage, CreatePipeline, StageSpec
from commands.tasks import CompleteTask, CreateTask, ReopenTask, UpdateTask
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.interaction import COMMON_FIELDS, Interaction
from domain.interaction import DETAIL_FIELDS as DETAILS_OF
from domain.pipeline import Pipeline
from domain.task import RecordKind, Task
from projections import bulk_timeline
from projections.bulk import add_macros, build, stage
from projections.store import ReadStore
from projections.timeline import DETAILS, LOGGED, Timeline
from projections.timeline_text import LABELS, MAX_EXCERPT, excerpt
from tests.conftest import Person
from tests.projections.compare import assert_same_as_rebuilt

#: Text that trips whatever is not exactly Python's: escapes DuckDB writes in upper
#: case, whitespace and line breaks outside ASCII, a quote and a backslash.
AWKWARD = 'Ünï\x1fcode\x0b\u2028\u3000 "quoted" \\u001F \x7f ☃'


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def assert_bulk_equals_handlers(crm: Crm, tmp_path: Path) -> None:
    store = ReadStore(tmp_path / "bulk.duckdb", [Timeline()])
    try:
        build(store, stage(crm.recorder))
        assert_same_as_rebuilt(crm.recorder, {Timeline.name: Timeline}, [store])
    finally:
        store.close()


class History:
    def __init__(self, crm: Crm, owner: Person) -> None:
        self.crm, self.owner = crm, owner

    def do(self, command: Payload) -> UUID:
        return execute(self.crm, command, self.owner.ctx).id


@pytest.fixture
def history(crm: Crm, owner: Person) -> History:
    return History(crm, owner)


def test_texts_around_the_excerpt_and_the_escapes(
    history: History, crm: Crm, tmp_path: Path
) -> None:
    account = history.do(RegisterAccount(name=f"Acme {AWKWARD}", address=AWKWARD))
    contact = history.do(
        CreateContact(first_name="Ann", last_name=AWKWARD, account_id=account, phones=[AWKWARD])
    )
    on = {"contact_ids": [contact], "account_id": account}
    bodies = [
        AWKWARD,
        "x" * 100,
        "x" * 101,
        "x" * 100 + " " + "y" * 10,  # the 101st character is whitespace
        "x" * 99 + "  " + "y" * 10,
        " " + "x" * 120,  # leading whitespace
        "\u3000\u2028\n\n  First line  \nsecond",
        "a" * 100 + "\u2028b",
        "a" * 50 + "\x1f" * 60,
        "é" * 150,
        "tab\tinside" + "z" * 200,
    ]
    for body in bodies:
        history.do(LogNote(occurred_at=at(1), body=body, **on))
        history.do(LogSms(occurred_at=at(1), direction="inbound", body=body[:2000], **on))
    for subject in ["", "   ", "\x85", "Re:\x1c next", "s" * 300, AWKWARD]:
        history.do(LogEmail(occurred_at=at(2), direction="outbound", subject=subject, **on))
    for title in ["", " \t ", AWKWARD, "t" * 101]:
        history.do(
            LogMeeting(
                occurred_at=at(3),
                ends_at=at(3, 10),
                title=title,
                attendees=[AWKWARD, "b@example.com"],
                notes=AWKWARD,
                **on,
            )
        )
    history.do(
        LogCall(
            occurred_at=at(4),
            direction="outbound",
            duration_seconds=0,
            outcome="wrong_number",
            notes=AWKWARD,
            **on,
        )
    )
    pipeline = history.do(
        CreatePipeline(name="Sales", stages=[StageSpec(name=f"Lead {AWKWARD}", probability=10)])
    )
    deal = history.do(
        OpenDeal(title=AWKWARD, amount="10", currency="EUR", pipeline_id=pipeline, contact_ids=[])
    )
    history.do(WinDeal(deal_id=deal, reason="  \n  "))
    history.do(ReopenDeal(deal_id=deal))
    history.do(LoseDeal(deal_id=deal, reason=f"\n{AWKWARD}\nmore"))
    task = history.do(CreateTask(title=AWKWARD, linked_kind=RecordKind.ACCOUNT, linked_id=account))
    history.do(CompleteTask(task_id=task))
    logged = history.do(LogNote(occurred_at=at(5), body="to retract", **on))
    history.do(RetractInteraction(interaction_id=logged, reason=f"{AWKWARD}\n" + "r" * 200))

    assert_bulk_equals_handlers(crm, tmp_path)


def test_corrections_move_an_interaction_and_a_retraction_follows(
    history: History, crm: Crm, tmp_path: Path
) -> None:
    acme = history.do(RegisterAccount(name="Acme"))
    globex = history.do(RegisterAccount(name="Globex"))
    ann = history.do(CreateContact(first_name="Ann", account_id=acme))
    bob = history.do(CreateContact(first_name="Bob", last_name="Ray"))
    pipeline = history.do(
        CreatePipeline(name="Sales", stages=[StageSpec(name="Lead", probability=10)])
    )
    deal = history.do(
        OpenDeal(title="Deal", amount="1", currency="EUR", pipeline_id=pipeline, account_id=acme)
    )
    meeting = history.do(
        LogMeeting(
            occurred_at=at(1),
            ends_at=at(1, 11),
            title="Kick-off",
            attendees=["a@example.com"],
            contact_ids=[ann, bob],
            account_id=acme,
        )
    )
    history.do(
        CorrectInteraction(interaction_id=meeting, contact_ids=[bob], account_id=None, deal_id=deal)
    )
    history.do(CorrectInteraction(interaction_id=meeting, title="Kick-off (moved)"))
    history.do(
        CorrectInteraction(
            interaction_id=meeting,
            attendees=[],
            ends_at=at(1, 12),
            occurred_at=at(1, 10),
            account_id=globex,
            contact_ids=[],
        )
    )
    history.do(RetractInteraction(interaction_id=meeting, reason="Never happened"))
    call = history.do(
        LogCall(
            occurred_at=at(2),
            direction="inbound",
            duration_seconds=3725,
            outcome="no_answer",
            notes="n",
            deal_id=deal,
        )
    )
    history.do(
        CorrectInteraction(
            interaction_id=call, duration_seconds=59, outcome="busy", contact_ids=[ann, bob]
        )
    )
    email = history.do(
        LogEmail(occurred_at=at(3), direction="outbound", subject="Hi", contact_ids=[ann])
    )
    history.do(CorrectInteraction(interaction_id=email, direction="inbound", body="Body"))

    assert_bulk_equals_handlers(crm, tmp_path)


def test_names_as_they_stood_at_each_change(history: History, crm: Crm, tmp_path: Path) -> None:
    holding = history.do(RegisterAccount(name="Holding"))
    acme = history.do(RegisterAccount(name="Acme", parent_id=holding))
    history.do(UpdateAccount(account_id=holding, name="Holding AG", industry="Retail"))
    history.do(MoveAccount(account_id=acme, parent_id=None))
    history.do(MoveAccount(account_id=acme, parent_id=holding))
    ann = history.do(CreateContact(first_name="Ann", account_id=acme))
    history.do(UpdateContact(contact_id=ann, last_name="Lee", phones=["+1"]))
    history.do(UpdateContact(contact_id=ann, phones=["+1"]))
    history.do(LinkContactToAccount(contact_id=ann, account_id=holding))
    history.do(UpdateAccount(account_id=holding, name="Holding SE"))
    history.do(LinkContactToAccount(contact_id=ann, account_id=None))
    pipeline = history.do(
        CreatePipeline(
            name="Sales",
            stages=[StageSpec(name="Lead", probability=10), StageSpec(name="Won", probability=90)],
        )
    )
    history.do(AddStage(pipeline_id=pipeline, name="Pilot", probability=50, position=1))
    deal = history.do(
        OpenDeal(
            title="Deal",
            amount="100.10",
            currency="USD",
            pipeline_id=pipeline,
            account_id=acme,
            contact_ids=[ann],
            expected_close_date=date(2024, 6, 1),
        )
    )
    history.do(MoveDeal(deal_id=deal, stage="Pilot"))
    pilot = next(s for s in crm.load(Pipeline, pipeline).stages if s.name == "Pilot")
    history.do(ChangeStage(pipeline_id=pipeline, stage_id=pilot.id, name="Trial"))
    history.do(MoveDeal(deal_id=deal, stage="Won"))
    history.do(MoveDeal(deal_id=deal, stage="Trial"))
    history.do(UpdateContact(contact_id=ann, first_name="Anne"))
    history.do(UpdateDeal(deal_id=deal, title="Deal 2", contact_ids=[ann], amount="5"))
    history.do(UpdateDeal(deal_id=deal, expected_close_date=None, currency="EUR"))
    history.do(WinDeal(deal_id=deal, reason="Price"))
    history.do(ReopenDeal(deal_id=deal, stage="Lead"))
    task = history.do(CreateTask(title="Call", linked_kind=RecordKind.DEAL, linked_id=deal))
    history.do(UpdateTask(task_id=task, title="Call back"))
    history.do(CompleteTask(task_id=task))
    history.do(ReopenTask(task_id=task))
    history.do(UpdateTask(task_id=task, title="Call again"))
    history.do(CreateTask(title="Unlinked"))

    assert_bulk_equals_handlers(crm, tmp_path)


@pytest.mark.parametrize("points", [bulk_timeline.WHITESPACE, bulk_timeline.LINE_BREAKS])
def test_whitespace_and_line_breaks_are_pythons(points: tuple[int, ...]) -> None:
    if points is bulk_timeline.WHITESPACE:
        expected = [p for p in range(sys.maxunicode + 1) if chr(p).isspace()]
    else:
        expected = [p for p in range(sys.maxunicode + 1) if len(f"a{chr(p)}b".splitlines()) == 2]
    assert sorted(points) == expected


def test_an_excerpt_is_cut_as_python_cuts_it() -> None:
    con = duckdb.connect()
    try:
        add_macros(con)
        for macro in bulk_timeline.MACROS:
            con.execute(macro)
        texts = [
            "",
            " ",
            "a",
            "x" * 100,
            "x" * 101,
            "x" * 99 + " " + "y",
            "x" * 100 + " " * 5 + "y",
            "x" * 100 + " " * 5,
            "\n\n x \n",
            "\u2029" + "w" * 140,
            AWKWARD,
            "é" * 101,
        ]
        for text in texts:
            (plain, from_json) = con.execute(
                "SELECT timeline_excerpt($1), timeline_excerpt_json(CAST(to_json($1) AS VARCHAR))",
                [text],
            ).fetchone() or (None, None)
            assert plain == excerpt(text), text
            assert from_json == excerpt(text), text
    finally:
        con.close()


def _storage(hint: Any) -> str:
    """How the transcoder stores a value of this type (see ``bulk_timeline.DATA``)."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint is UUID:
        return bulk_timeline.UUID
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return bulk_timeline.UUIDS if item is UUID else bulk_timeline.JSON
    if hint in (datetime, date, Decimal) or (isinstance(hint, type) and issubclass(hint, Enum)):
        return bulk_timeline.WRAPPED
    return bulk_timeline.JSON


def test_the_fields_written_are_the_domain_events_fields() -> None:
    aggregates = {"Account": Account, "Contact": Contact, "Deal": Deal, "Task": Task}
    for name, fields in bulk_timeline.DATA.items():
        aggregate, event = name.split(".")
        cls = getattr(aggregates[aggregate], event)
        hints = typing.get_type_hints(cls)
        own = [
            (field.name, _storage(hints[field.name]))
            for field in dataclasses.fields(cls)
            if field.name not in ("originator_id", "originator_version", "timestamp")
            and field.name != "originator_topic"
        ]
        assert list(fields) == own, name


def test_the_constants_copied_from_the_handlers_are_theirs() -> None:
    assert bulk_timeline.RECORD_FIELDS == {**DETAILS, "deal": ("title",)}
    assert {name: kind.value for name, kind in LOGGED.items()} == bulk_timeline.LOGGED_KINDS
    assert bulk_timeline.LABELS == LABELS
    assert bulk_timeline.MAX_EXCERPT == MAX_EXCERPT
    assert set(bulk_timeline.CORRECTABLE) == COMMON_FIELDS.union(*DETAILS_OF.values())
    # Details changes are summed up apart; removals (an erasure too) purge the record and
    # write no entry.
    unsummarised = (
        {"Account.DetailsChanged", "Contact.DetailsChanged"}
        | {f"{kind}.Removed" for kind in ("Account", "Contact", "Deal")}
        | {"Contact.Erased"}
    )
    assert set(bulk_timeline.SUMMARIES) | unsummarised == {
        name for name in Timeline.handlers if name.split(".")[0] in ("Account", "Contact", "Deal")
    }
    for name, kind in LOGGED.items():
        cls = getattr(Interaction, name.split(".")[1])
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in (*COMMON_FIELDS, "logged_by", *DETAILS_OF[kind]):
                expected = bulk_timeline.LOGGED_STORAGE.get(field.name, bulk_timeline.JSON)
                assert _storage(hints[field.name]) == expected, (name, field.name)
