"""How events are stored: JSON, never pickle, with money, dates, times, ids and enums
coming back exactly as they went in."""

from __future__ import annotations

import importlib
import json
import pkgutil
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import orjson
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import domain
from commands.app import Crm
from commands.deals import OpenDeal, UpdateDeal
from commands.handlers import execute
from commands.idempotency import IdempotencyRecord
from commands.persistence import STORED_ENUMS, Meta
from commands.pipelines import CreatePipeline, StageSpec
from domain.contact import EMAIL_SCOPE, Contact, ErasureBasis, LifecycleStage
from domain.deal import Deal, DealStatus
from domain.index import UniqueKey
from domain.interaction import CallOutcome, Interaction, InteractionKind
from domain.pipeline import Pipeline
from domain.roles import Authority, Role
from domain.task import RecordKind, Task
from domain.user import OwnerRoster, User
from domain.values import MAX_AMOUNT, Direction, Money
from tests.conftest import Person, Store

META = Meta(actor="system", request_id="persistence-test", source="cli")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = timezone(timedelta(hours=-5))
SINCE = datetime(2025, 3, 14, 9, 15, 30, 123456, tzinfo=BERLIN)


def stored_states(crm: Crm) -> list[dict[str, Any]]:
    """Every stored event's state, parsed as plain JSON (which pickle would not survive)."""
    notifications = crm.recorder.select_notifications(start=1, limit=100_000)
    return [json.loads(n.state) for n in notifications]


def stored_state_of(crm: Crm, aggregate_id: UUID, version: int) -> dict[str, Any]:
    for notification in crm.recorder.select_notifications(start=1, limit=100_000):
        if (notification.originator_id, notification.originator_version) == (
            aggregate_id,
            version,
        ):
            state: dict[str, Any] = json.loads(notification.state)
            return state
    raise AssertionError(f"no stored event {aggregate_id} v{version}")


def details_for(kind: InteractionKind, index: int) -> dict[str, Any]:
    direction = list(Direction)[index % len(Direction)]
    by_kind: dict[InteractionKind, dict[str, Any]] = {
        InteractionKind.CALL: {
            "direction": direction,
            "duration_seconds": 90,
            "outcome": list(CallOutcome)[index % len(CallOutcome)],
            "notes": "asked for a quote",
        },
        InteractionKind.EMAIL: {"direction": direction, "subject": "Quote", "body": "Attached."},
        InteractionKind.MEETING: {
            "ends_at": SINCE + timedelta(hours=2),
            "title": "Kick-off",
            "attendees": ["ada@example.com"],
            "notes": "",
        },
        InteractionKind.NOTE: {"body": "Prefers e-mail."},
        InteractionKind.SMS: {"direction": direction, "body": "On my way"},
    }
    return by_kind[kind]


def everything(owner_id: UUID) -> list[Aggregate]:
    """Unsaved records whose events hold every stored enum member, money, dates and times."""
    roster = OwnerRoster()
    system = Authority.system()
    user = User.invite("ada@example.com", "Ada", Role.OWNER, by=system, owners=roster)
    for role in Role:
        if role is not Role.OWNER:
            user.grant_role(role, by=system, owners=roster)
    user.revoke_role(Role.AUDITOR, by=system, owners=roster)

    contact = Contact.create("Grace", "Hopper", owner_id, emails=["grace@example.com"])
    for stage in LifecycleStage:
        contact.change_lifecycle_stage(stage)

    pipeline = Pipeline.create("Sales", [("Lead", 10), ("Proposal", 50), ("Won", 100)])
    won = Deal.open(
        "Fleet",
        Money(Decimal("12500.1234"), "EUR"),
        pipeline,
        owner_id,
        expected_close_date=date(2025, 12, 31),
        contact_ids=[contact.id],
    )
    won.move_to("Proposal", pipeline)
    won.change_value(Money(Decimal("0.10"), "USD"))
    won.win("signed")
    lost = Deal.open("Pilot", Money(Decimal("1E+3"), "JPY"), pipeline, owner_id)
    lost.lose("no budget")
    reopened = Deal.open("Retry", Money(Decimal("0"), "EUR"), pipeline, owner_id)
    reopened.lose("")
    reopened.reopen(pipeline)

    logged = [(kind, 0) for kind in InteractionKind]
    logged += [(InteractionKind.CALL, index) for index in range(len(CallOutcome))]
    interactions = [
        Interaction.log(
            kind,
            occurred_at=SINCE + timedelta(minutes=index),
            now=datetime.now(UTC),
            logged_by=owner_id,
            contact_ids=[contact.id],
            deal_id=won.id,
            **details_for(kind, index),
        )
        for kind, index in logged
    ]
    call = interactions[0]
    call.correct(
        {"outcome": CallOutcome.VOICEMAIL, "occurred_at": SINCE.astimezone(NEW_YORK)},
        now=datetime.now(UTC),
    )
    interactions[-1].retract("logged twice")

    linked: dict[RecordKind, UUID] = {
        RecordKind.ACCOUNT: uuid4(),
        RecordKind.CONTACT: contact.id,
        RecordKind.DEAL: won.id,
    }
    tasks = [
        Task.create("Call back", owner_id, owner_id, due_at=SINCE, linked_kind=k, linked_id=i)
        for k, i in linked.items()
    ]
    tasks[0].change_due(datetime(2026, 1, 2, 9, 0, tzinfo=NEW_YORK))
    tasks[1].complete(owner_id)
    return [roster, user, contact, pipeline, won, lost, reopened, *interactions, *tasks]


def test_every_enum_the_domain_defines_has_a_stored_form() -> None:
    defined = {
        member
        for module in pkgutil.iter_modules(domain.__path__, "domain.")
        for member in vars(importlib.import_module(module.name)).values()
        if isinstance(member, type) and issubclass(member, Enum) and member is not Enum
    }

    assert defined == set(STORED_ENUMS)


@pytest.mark.parametrize(
    "member", [m for e in STORED_ENUMS for m in e], ids=lambda m: f"{type(m).__name__}.{m.name}"
)
def test_every_stored_enum_member_is_transcoded_to_its_value_and_back(
    crm: Crm, member: Enum
) -> None:
    transcoder = crm.mapper.transcoder

    encoded = transcoder.encode({"value": member, "nested": [{"value": member}]})

    assert json.loads(encoded)["value"] == {
        "_type_": f"enum:{type(member).__name__}",
        "_data_": member.value,
    }
    decoded = transcoder.decode(encoded)
    assert decoded["value"] is member
    assert decoded["nested"][0]["value"] is member


def test_every_event_is_stored_as_json_with_its_metadata(crm: Crm) -> None:
    records = everything(uuid4())
    pending = sum(len(record.pending_events) for record in records)

    crm.save_with(META, *records)

    states = stored_states(crm)
    assert len(states) == pending > 40
    for notification in crm.recorder.select_notifications(start=1, limit=100_000):
        assert not notification.state.startswith(b"\x80"), "pickle protocol marker"
        assert notification.topic.startswith(("domain.", "commands."))
    assert all(state["_meta"] == META.stored() for state in states)
    assert all(state["timestamp"]["_type_"] == "datetime_iso" for state in states)


def test_records_come_back_from_the_store_exactly_as_they_were_saved_after_a_restart(
    crm: Crm, store: Store
) -> None:
    records = everything(uuid4())
    crm.save_with(META, *records)
    reopened = store.open()

    try:
        for record in records:
            reloaded: Aggregate = reopened.repository.get(record.id)

            assert type(reloaded) is type(record)
            assert vars(reloaded) == vars(record), type(record).__name__
            assert reloaded.version == record.version
    finally:
        reopened.close()


def test_money_keeps_its_exact_decimal_amount_and_exponent(crm: Crm, owner: Person) -> None:
    pipeline = execute(
        crm,
        CreatePipeline(name="Sales", stages=[StageSpec(name="Lead", probability=10)]),
        owner.ctx,
    )
    opened = execute(
        crm,
        OpenDeal(
            title="Fleet", amount=Decimal("12500.1234"), currency="EUR", pipeline_id=pipeline.id
        ),
        owner.ctx,
    )
    changed = execute(
        crm, UpdateDeal(deal_id=opened.id, amount=Decimal("0.10"), currency="USD"), owner.ctx
    )

    deal = crm.load(Deal, opened.id)
    assert str(deal.amount) == "0.10"
    assert deal.amount.as_tuple() == Decimal("0.10").as_tuple()
    assert deal.currency == "USD"
    first = crm.load(Deal, opened.id, version=opened.version)
    assert str(first.amount) == "12500.1234"
    stored = stored_state_of(crm, opened.id, changed.version)
    assert stored["amount"] == {"_type_": "decimal_str", "_data_": "0.10"}
    assert stored["previous_amount"] == {"_type_": "decimal_str", "_data_": "12500.1234"}


def test_dates_times_and_ids_round_trip_and_times_are_stored_in_utc(
    crm: Crm, owner: Person
) -> None:
    owner_id = owner.user.id
    pipeline = Pipeline.create("Sales", [("Lead", 10)])
    deal = Deal.open(
        "Fleet",
        Money(Decimal("1"), "EUR"),
        pipeline,
        owner_id,
        expected_close_date=date(2025, 2, 28),
    )
    due = datetime(2025, 7, 1, 9, 30, tzinfo=BERLIN)
    task = Task.create(
        "Call", owner_id, owner_id, due_at=due, linked_kind=RecordKind.DEAL, linked_id=deal.id
    )
    crm.save_with(META, pipeline, deal, task)

    reloaded_deal = crm.load(Deal, deal.id)
    reloaded_task = crm.load(Task, task.id)

    assert reloaded_deal.expected_close_date == date(2025, 2, 28)
    assert type(reloaded_deal.expected_close_date) is date
    assert reloaded_deal.pipeline_id == pipeline.id
    assert isinstance(reloaded_deal.pipeline_id, UUID)
    assert reloaded_task.due_at == due
    assert reloaded_task.due_at is not None
    assert reloaded_task.due_at.utcoffset() == timedelta(0)
    assert reloaded_task.linked_id == deal.id
    stored = stored_state_of(crm, task.id, 1)
    assert stored["due_at"] == {"_type_": "datetime_iso", "_data_": "2025-07-01T07:30:00+00:00"}
    assert stored["linked_kind"] == {"_type_": "enum:RecordKind", "_data_": "deal"}
    assert stored["linked_id"] == {"_type_": "uuid_hex", "_data_": deal.id.hex}
    assert stored_state_of(crm, deal.id, 1)["expected_close_date"] == {
        "_type_": "date_iso",
        "_data_": "2025-02-28",
    }


def test_an_ambiguous_local_time_is_stored_as_the_instant_it_names(crm: Crm) -> None:
    # 02:30 happens twice in Berlin on 26 October 2025; fold says which one is meant.
    first = datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=0)
    second = datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=1)
    tasks = [Task.create("Call", uuid4(), None, due_at=due) for due in (first, second)]
    crm.save_with(META, *tasks)

    reloaded = [crm.load(Task, task.id).due_at for task in tasks]

    # Python never calls an ambiguous time equal to one in another zone: compare in UTC.
    assert reloaded == [
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC),
    ]
    assert [due.astimezone(UTC) for due in (first, second)] == reloaded


def test_a_naive_datetime_is_refused_and_nothing_is_written(crm: Crm, owner: Person) -> None:
    position = crm.position()
    # The domain refuses naive times; built around it, the store still refuses them.
    task = Task(
        title="Call",
        due_at=datetime(2025, 7, 1, 9, 30),
        assignee_id=owner.user.id,
        linked_kind=None,
        linked_id=None,
        created_by=None,
    )

    with pytest.raises(ValueError, match="naive datetime"):
        crm.save_with(META, task)

    assert crm.position() == position
    assert crm.find(Task, task.id) is None


def test_the_deal_status_enum_is_rebuilt_from_the_events(crm: Crm, owner: Person) -> None:
    pipeline = Pipeline.create("Sales", [("Lead", 10)])
    deals = {
        status: Deal.open(status.value, Money(Decimal("1"), "EUR"), pipeline, owner.user.id)
        for status in DealStatus
    }
    deals[DealStatus.WON].win()
    deals[DealStatus.LOST].lose()
    crm.save_with(META, pipeline, *deals.values())

    for status, deal in deals.items():
        assert crm.load(Deal, deal.id).status is status


amounts = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(min_value=0, max_value=10**19 - 1),
    st.integers(min_value=-3, max_value=4),
).filter(lambda amount: amount < MAX_AMOUNT)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(amount=amounts)
@example(amount=Decimal("0.10"))
@example(amount=Decimal("0.0000"))
@example(amount=Decimal("1E+3"))
@example(amount=Decimal("999999999999999.9999"))
def test_any_valid_amount_is_stored_and_reloaded_digit_for_digit(crm: Crm, amount: Decimal) -> None:
    pipeline = Pipeline.create("Sales", [("Lead", 10)])
    deal = Deal.open("Any", Money(amount, "EUR"), pipeline, uuid4())
    crm.save_with(META, deal)

    reloaded = crm.load(Deal, deal.id)

    assert reloaded.amount.as_tuple() == amount.as_tuple()
    assert stored_state_of(crm, deal.id, 1)["amount"]["_data_"] == str(amount)


def _version_1(crm: Crm, record_id: UUID, version: int, topic: str, **fields: Any) -> Any:
    """A stored event as written before its class_version 2 (none stated), decoded."""
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": datetime.now(UTC).isoformat()},
        **fields,
        "_meta": {"actor": "system", "request_id": "r", "source": "cli"},
    }
    return crm.mapper.to_domain_event(StoredEvent(record_id, version, topic, orjson.dumps(state)))


def test_an_erasure_recorded_with_a_free_text_reason_loads_without_it(crm: Crm) -> None:
    event = _version_1(crm, uuid4(), 3, get_topic(Contact.Erased), reason="Ann Smith asked")
    assert isinstance(event, Contact.Erased)
    assert (event.basis, event.reference) == (ErasureBasis.UNRECORDED, None)
    assert "reason" not in vars(event)  # the free text is not read back


def test_a_reclaim_recorded_without_its_key_loads_and_keeps_the_first_claims_key(
    crm: Crm,
) -> None:
    holder, key = uuid4(), UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=None)
    stored = {"holder_id": {"_type_": "uuid_hex", "_data_": holder.hex}}
    event = _version_1(crm, key.id, 2, get_topic(UniqueKey.Reclaimed), **stored)
    assert isinstance(event, UniqueKey.Reclaimed)
    assert (event.scope, event.key) == (None, None)
    event.mutate(key)
    assert (key.key, key.holder_id) == ("ann@example.com", holder)


def test_an_idempotency_record_from_before_sealing_loads_unsealed(crm: Crm) -> None:
    fields = {
        "actor": "system",
        "key": "k",
        "fingerprint": "ab" * 32,
        "target_id": {"_type_": "uuid_hex", "_data_": uuid4().hex},
        "target_version": 1,
        "created": {},
        "originator_topic": get_topic(IdempotencyRecord),
    }
    event = _version_1(crm, uuid4(), 1, get_topic(IdempotencyRecord.Recorded), **fields)
    assert isinstance(event, IdempotencyRecord.Recorded)
    assert (event.fingerprint, event.subject_id) == ("ab" * 32, None)
