"""The audit log built in bulk equals the handlers' build on hand-written histories.

The events are written to the store as they are stored (the transcoder's compact JSON
with its wrappers), straight through the recorder: the histories reach what random
commands rarely do — awkward text, set changes of members present or absent, a before
given by the event that equals its after, an event that carries an implied field or
whose only event gives a before of its own, schemas the domain does not write today.
Each history is built in bulk up to several positions, the handlers carrying on to the
head, and must equal the handlers' build from zero.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from commands.app import Crm, store_env
from projections.audit import AuditLog
from projections.bulk import build, stage
from projections.runner import Runner
from projections.store import ReadStore
from tests.projections.compare import content, differences, owners, rebuild

FACTORIES = {AuditLog.name: AuditLog}


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_0000_0000_0000 + n)


def wrapped_uuid(n: int) -> dict[str, str]:
    return {"_type_": "uuid_hex", "_data_": uid(n).hex}


def wrapped(kind: str, data: Any) -> dict[str, Any]:
    return {"_type_": kind, "_data_": data}


class History:
    """Events of several records, stored as the write side stores them."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.versions: dict[uuid.UUID, int] = {}
        self.second = 0

    def add(self, record: uuid.UUID, event: str, /, **fields: Any) -> None:
        version = self.versions.get(record, 0) + 1
        self.versions[record] = version
        self.second += 1
        kind = event.split(".", 1)[0]
        state: dict[str, Any] = {
            "timestamp": wrapped("datetime_iso", f"2026-01-01T00:00:{self.second % 60:02d}+00:00")
        }
        if version == 1:
            state["originator_topic"] = f"domain.x:{kind}"
        state.update(fields)
        state["_meta"] = {
            "actor": uid(999).hex if self.second % 3 else "system",
            "request_id": f"r{self.second}",
            "source": "test" if self.second % 2 else None,
            "idempotency_key": None,
        }
        encoded = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
        self.events.append(StoredEvent(record, version, f"domain.x:{event}", encoded.encode()))


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[Crm]:
    app = Crm(env=store_env(None, str(tmp_path / "events.sqlite")))
    yield app
    app.close()


def assert_bulk_equals_handlers(crm: Crm, history: History, tmp_path: Path) -> None:
    crm.recorder.insert_events(history.events)
    head = crm.recorder.max_notification_id() or 0
    expected = rebuild(crm.recorder, FACTORIES)
    for cut in sorted({0, 1, head // 3, head // 2, head - 1, head}):
        store = ReadStore(tmp_path / f"bulk-{cut}.duckdb", [AuditLog()])
        try:
            build(store, stage(crm.recorder, upto=cut))
            Runner(crm.recorder, [store], batch_size=3).catch_up()
            problems = differences(content([store]), expected, owners(FACTORIES))
            assert not problems, f"bulk up to {cut}:\n" + "\n".join(problems)
        finally:
            store.close()


AWKWARD = [
    'quote " backslash \\ slash / tab \t newline \n',
    "controls \x00\x01\x08\x0b\x0c\x0e\x0f\x1a\x1b\x1f\x7f end",
    "a backslash then text: \\u001F and \\\\u000B",
    "unicode: é ü 中文 😀 \u2028 \u2029 \ufeff",
    '{"_type_":"uuid_hex","_data_":"00000000000000000000000000000000"}',
    "",
]


def test_records_with_one_event(crm: Crm, tmp_path: Path) -> None:
    history = History()
    for n, text in enumerate(AWKWARD):
        history.add(
            uid(n),
            "Account.Registered",
            name=text,
            website=None,
            industry=text[:3],
            country="GB",
            address=None,
            owner_id=wrapped_uuid(100),
            parent_id=None,
        )
    history.add(
        uid(10),
        "Interaction.MeetingLogged",
        occurred_at=wrapped("datetime_iso", "2025-01-01T10:00:00+00:00"),
        contact_ids=[wrapped_uuid(11), wrapped_uuid(12), wrapped_uuid(13)],
        account_id=None,
        deal_id=wrapped_uuid(14),
        logged_by=None,
        ends_at=wrapped("datetime_iso", "2025-01-01T11:00:00+00:00"),
        title=AWKWARD[1],
        attendees=AWKWARD,
        notes="",
    )
    history.add(
        uid(20),
        "Interaction.CallLogged",
        occurred_at=wrapped("datetime_iso", "2025-01-01T10:00:00+00:00"),
        contact_ids=[],
        account_id=wrapped_uuid(21),
        deal_id=None,
        logged_by=wrapped_uuid(22),
        direction=wrapped("enum:Direction", "inbound"),
        duration_seconds=0,
        outcome=wrapped("enum:CallOutcome", "connected"),
        notes=AWKWARD[2],
    )
    history.add(
        uid(30),
        "Pipeline.Created",
        name="Sales",
        stages=[
            wrapped("stage", {"id": wrapped_uuid(31), "name": 'Q "1" {x}', "probability": 10}),
            wrapped("stage", {"id": wrapped_uuid(32), "name": "Won", "probability": 100}),
        ],
    )
    history.add(
        uid(40),
        "Deal.Opened",
        title="Deal",
        account_id=None,
        contact_ids=[wrapped_uuid(41)],
        amount=wrapped("decimal_str", "10.50"),
        currency="EUR",
        pipeline_id=wrapped_uuid(30),
        stage_id=wrapped_uuid(31),
        owner_id=wrapped_uuid(42),
        expected_close_date=wrapped("date_iso", "2025-02-01"),
    )
    # Only events whose before is their own, or that carry an implied field.
    history.add(
        uid(50),
        "Deal.AmountChanged",
        amount=wrapped("decimal_str", "2"),
        currency="EUR",
        previous_amount=wrapped("decimal_str", "1"),
        previous_currency="EUR",
    )
    history.add(uid(51), "Deal.Retitled", title="Same", previous="Same")
    history.add(uid(52), "Deal.Won", reason="r", status="lost")
    history.add(uid(53), "Task.Completed", completed_by=wrapped_uuid(1), previous=True)
    history.add(uid(54), "Account.Archived")
    history.add(uid(55), "Contact.Tagged", tag="solo")
    # Bookkeeping of the write side: not audited.
    history.add(uid(60), "UniqueKey.Claimed", scope="s", key="k", holder_id=wrapped_uuid(1))
    history.add(uid(61), "Hierarchy.Started")
    history.add(uid(61), "Hierarchy.ParentSet", account_id=wrapped_uuid(1), parent_id=None)
    history.add(uid(62), "OwnerRoster.OwnerAdded", user_id=wrapped_uuid(1))
    history.add(uid(63), "IdempotencyRecord.Recorded", key="k")
    assert_bulk_equals_handlers(crm, history, tmp_path)


def test_set_changes(crm: Crm, tmp_path: Path) -> None:
    history = History()
    contact, bare, user = uid(1), uid(2), uid(3)
    history.add(
        contact,
        "Contact.Created",
        first_name="A",
        last_name="B",
        emails=[],
        phones=[],
        job_title=None,
        account_id=None,
        owner_id=wrapped_uuid(9),
        tags=["vip", "partner"],
        lifecycle_stage=wrapped("enum:LifecycleStage", "lead"),
    )
    history.add(bare, "Contact.Created", first_name="C", tags=[])
    for target, event, tag in [
        (contact, "Contact.Tagged", "x\x1fy"),
        (contact, "Contact.Tagged", "vip"),
        (bare, "Contact.Untagged", "nothing"),
        (contact, "Contact.Untagged", "vip"),
        (bare, "Contact.Tagged", "first"),
        (contact, "Contact.Untagged", "absent"),
        (contact, "Contact.Tagged", "vip"),
        (bare, "Contact.Tagged", "first"),
        (bare, "Contact.Untagged", "first"),
    ]:
        history.add(target, event, tag=tag)
    history.add(contact, "Contact.DetailsChanged", first_name="A", last_name="Z", phones=["1"])
    history.add(user, "User.Invited", email="u@example.com", name="U", invited_by=None)
    history.add(user, "User.RoleGranted", role=wrapped("enum:Role", "owner"), granted_by=None)
    history.add(user, "User.RoleGranted", role=wrapped("enum:Role", "sales"), granted_by=None)
    history.add(user, "User.RoleRevoked", role=wrapped("enum:Role", "owner"), revoked_by=None)
    for n in range(3):
        history.add(
            user,
            "User.TokenIssued",
            token_id=wrapped_uuid(20 + n),
            token_hash="secret",
            label=f"t{n}",
        )
    history.add(user, "User.TokenRevoked", token_id=wrapped_uuid(21))
    history.add(user, "User.Deactivated", deactivated_by=wrapped_uuid(9))
    assert_bulk_equals_handlers(crm, history, tmp_path)


def test_befores_from_the_state_and_from_the_event(crm: Crm, tmp_path: Path) -> None:
    history = History()
    deal, interaction, pipeline, account = uid(1), uid(2), uid(3), uid(4)
    history.add(
        deal,
        "Deal.Opened",
        title="Deal",
        account_id=None,
        contact_ids=[],
        amount=wrapped("decimal_str", "10.00"),
        currency="EUR",
        pipeline_id=wrapped_uuid(3),
        stage_id=wrapped_uuid(31),
        owner_id=wrapped_uuid(9),
        expected_close_date=None,
    )
    history.add(deal, "Deal.StageChanged", stage_id=wrapped_uuid(32), previous=wrapped_uuid(31))
    # A before of its own equal to the after: not logged, and not the state either.
    history.add(deal, "Deal.StageChanged", stage_id=wrapped_uuid(33), previous=wrapped_uuid(33))
    history.add(deal, "Deal.Lost", reason="price")
    history.add(deal, "Deal.Reopened", stage_id=wrapped_uuid(32))
    history.add(deal, "Deal.Reopened", stage_id=wrapped_uuid(33))
    history.add(
        deal,
        "Deal.AmountChanged",
        amount=wrapped("decimal_str", "12.00"),
        currency="USD",
        previous_amount=wrapped("decimal_str", "10.00"),
        previous_currency="USD",
    )
    history.add(
        deal,
        "Deal.ContactsChanged",
        contact_ids=[wrapped_uuid(5), wrapped_uuid(6)],
        previous=[],
    )
    history.add(
        deal,
        "Deal.CloseDateChanged",
        expected_close_date=wrapped("date_iso", "2025-03-01"),
        previous=None,
    )
    history.add(deal, "Deal.Won", reason="")
    history.add(
        interaction,
        "Interaction.NoteLogged",
        occurred_at=wrapped("datetime_iso", "2025-01-01T10:00:00+00:00"),
        contact_ids=[wrapped_uuid(5)],
        account_id=None,
        deal_id=wrapped_uuid(1),
        logged_by=None,
        body=AWKWARD[0],
    )
    history.add(
        interaction,
        "Interaction.Corrected",
        changes={
            "body": AWKWARD[1],
            "contact_ids": [wrapped_uuid(6)],
            "occurred_at": wrapped("datetime_iso", "2025-01-02T10:00:00+00:00"),
        },
        previous={
            "body": AWKWARD[0],
            "contact_ids": [wrapped_uuid(5)],
            "occurred_at": wrapped("datetime_iso", "2025-01-01T10:00:00+00:00"),
        },
    )
    # A correction without a previous value for a field: its before is the state.
    history.add(
        interaction,
        "Interaction.Corrected",
        changes={"account_id": wrapped_uuid(4), "body": AWKWARD[1]},
        previous={},
    )
    history.add(interaction, "Interaction.Retracted", reason="wrong")
    history.add(
        pipeline,
        "Pipeline.Created",
        name="Sales",
        stages=[wrapped("stage", {"id": wrapped_uuid(31), "name": "Q", "probability": 10})],
    )
    history.add(pipeline, "Pipeline.Renamed", name="Renamed", previous="Sales")
    history.add(
        pipeline, "Pipeline.StageRenamed", stage_id=wrapped_uuid(31), name="R", previous="Q"
    )
    history.add(
        pipeline, "Pipeline.StageReweighted", stage_id=wrapped_uuid(31), probability=20, previous=10
    )
    history.add(
        pipeline,
        "Pipeline.StageAdded",
        stage=wrapped("stage", {"id": wrapped_uuid(32), "name": "W", "probability": 0}),
        position=1,
    )
    history.add(
        pipeline,
        "Pipeline.StagesReordered",
        order=[wrapped_uuid(32), wrapped_uuid(31)],
        previous=[wrapped_uuid(31), wrapped_uuid(32)],
    )
    history.add(
        account,
        "Account.Registered",
        name="Acme",
        website=None,
        industry=None,
        country=None,
        address=None,
        owner_id=wrapped_uuid(9),
        parent_id=None,
    )
    for event in ["Account.Archived", "Account.Restored", "Account.Restored", "Account.Archived"]:
        history.add(account, event)
    history.add(
        account,
        "Account.DetailsChanged",
        name="Acme",
        website="w",
        industry=None,
        country="GB",
        address=None,
    )
    history.add(account, "Account.ParentChanged", parent_id=wrapped_uuid(5), previous=None)
    history.add(account, "Account.OwnerChanged", owner_id=wrapped_uuid(8), previous=wrapped_uuid(9))
    assert_bulk_equals_handlers(crm, history, tmp_path)


def test_the_librarys_class_version_is_no_change_of_the_record(crm: Crm, tmp_path: Path) -> None:
    """Events of a ``class_version`` above 1 store it in their state: it is the library's
    bookkeeping, not a field of the record, in the live audit log and in a bulk build."""
    history = History()
    history.add(uid(1), "Contact.Created", first_name="A", tags=[])
    history.add(
        uid(1),
        "Contact.Erased",
        class_version=2,
        basis=wrapped("enum:ErasureBasis", "objection"),
        reference="GDPR-1",
    )
    crm.recorder.insert_events(history.events)
    store = ReadStore(tmp_path / "bulk.duckdb", [AuditLog()])
    try:
        build(store, stage(crm.recorder, upto=2))
        built = content([store])["audit_log"]
    finally:
        store.close()
    for log in (rebuild(crm.recorder, FACTORIES)["audit_log"], built):
        at = log.columns.index("changes")
        erased = json.loads(log.rows[-1][at])
        assert erased == {
            "basis": {"before": None, "after": "objection"},
            "reference": {"before": None, "after": "GDPR-1"},
        }
