"""Interactions: logging each kind, when it happened, corrections and retractions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidValueError
from domain.interaction import (
    CLOCK_SKEW,
    CallOutcome,
    Interaction,
    InteractionKind,
    InteractionRetractedError,
)
from domain.values import Direction
from tests.domain.helpers import NOW, assert_no_new_events, given, only_event, refused

CONTACT = uuid4()
LOGGER = uuid4()
AN_HOUR_AGO = NOW - timedelta(hours=1)

DETAILS: dict[InteractionKind, dict[str, Any]] = {
    InteractionKind.CALL: {
        "direction": Direction.OUTBOUND,
        "duration_seconds": 300,
        "outcome": CallOutcome.CONNECTED,
        "notes": "Talked pricing",
    },
    InteractionKind.EMAIL: {
        "direction": Direction.INBOUND,
        "subject": "Quote",
        "body": "Please send the quote",
    },
    InteractionKind.MEETING: {
        "ends_at": AN_HOUR_AGO + timedelta(minutes=30),
        "title": "Kick-off",
        "attendees": ["ann@example.com", "bob@example.com"],
        "notes": "Agreed the scope",
    },
    InteractionKind.NOTE: {"body": "Prefers calls in the morning"},
    InteractionKind.SMS: {"direction": Direction.OUTBOUND, "body": "See you at 10"},
}

LOGGED_EVENT: dict[InteractionKind, type[Interaction.Logged]] = {
    InteractionKind.CALL: Interaction.CallLogged,
    InteractionKind.EMAIL: Interaction.EmailLogged,
    InteractionKind.MEETING: Interaction.MeetingLogged,
    InteractionKind.NOTE: Interaction.NoteLogged,
    InteractionKind.SMS: Interaction.SmsLogged,
}


def log(
    kind: InteractionKind,
    occurred_at: datetime = AN_HOUR_AGO,
    contact_ids: list[UUID] | None = None,
    account_id: UUID | None = None,
    deal_id: UUID | None = None,
    **details: Any,
) -> Interaction:
    return Interaction.log(
        kind,
        occurred_at=occurred_at,
        now=NOW,
        logged_by=LOGGER,
        contact_ids=[CONTACT] if contact_ids is None else contact_ids,
        account_id=account_id,
        deal_id=deal_id,
        **(details or DETAILS[kind]),
    )


def a_call() -> Interaction:
    return given(log(InteractionKind.CALL))


def a_meeting() -> Interaction:
    return given(log(InteractionKind.MEETING))


# --- logging --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(InteractionKind), ids=lambda kind: kind.value)
def test_logging_an_interaction_records_its_kind_and_details(kind: InteractionKind) -> None:
    interaction = log(kind)

    logged = only_event(interaction, LOGGED_EVENT[kind])
    assert logged.occurred_at == AN_HOUR_AGO
    assert logged.contact_ids == [CONTACT]
    assert (logged.account_id, logged.deal_id, logged.logged_by) == (None, None, LOGGER)
    for field, value in DETAILS[kind].items():
        assert getattr(logged, field) == value
    assert interaction.kind is kind
    assert interaction.details == DETAILS[kind]
    assert not interaction.retracted


def test_an_interaction_may_link_to_an_account_or_a_deal_alone() -> None:
    account_id, deal_id = uuid4(), uuid4()

    on_account = log(InteractionKind.NOTE, contact_ids=[], account_id=account_id)
    on_deal = log(InteractionKind.NOTE, contact_ids=[], deal_id=deal_id)

    assert only_event(on_account, Interaction.NoteLogged).account_id == account_id
    assert only_event(on_deal, Interaction.NoteLogged).deal_id == deal_id


def test_logging_drops_repeated_contacts() -> None:
    other = uuid4()

    note = log(InteractionKind.NOTE, contact_ids=[CONTACT, other, CONTACT])

    assert only_event(note, Interaction.NoteLogged).contact_ids == [CONTACT, other]


def test_an_interaction_must_link_to_a_contact_an_account_or_a_deal() -> None:
    with pytest.raises(InvalidValueError, match="linked to a contact, an account or a deal"):
        log(InteractionKind.NOTE, contact_ids=[])


@pytest.mark.parametrize(
    ("kind", "details"),
    [
        (InteractionKind.NOTE, {"subject": "Hi", "body": "Hello"}),
        (InteractionKind.NOTE, {"title": "Hello"}),
        (InteractionKind.CALL, {"direction": Direction.INBOUND, "notes": "missing fields"}),
        (InteractionKind.SMS, DETAILS[InteractionKind.EMAIL]),
        (InteractionKind.MEETING, DETAILS[InteractionKind.CALL]),
    ],
)
def test_an_interaction_takes_exactly_the_details_of_its_kind(
    kind: InteractionKind, details: dict[str, Any]
) -> None:
    with pytest.raises(InvalidValueError, match=f"a {kind.value} has the details"):
        log(kind, **details)


@pytest.mark.parametrize("kind", sorted(set(InteractionKind) - {InteractionKind.MEETING}, key=str))
def test_an_interaction_other_than_a_meeting_cannot_have_happened_in_the_future(
    kind: InteractionKind,
) -> None:
    with pytest.raises(InvalidValueError, match="in the future"):
        log(kind, occurred_at=NOW + CLOCK_SKEW + timedelta(seconds=1))


def test_an_interaction_may_claim_a_time_within_the_clock_skew() -> None:
    call = log(InteractionKind.CALL, occurred_at=NOW + CLOCK_SKEW)

    assert only_event(call, Interaction.CallLogged).occurred_at == NOW + CLOCK_SKEW


def test_a_meeting_may_be_logged_ahead_of_time() -> None:
    tomorrow = NOW + timedelta(days=1)
    details = {**DETAILS[InteractionKind.MEETING], "ends_at": tomorrow + timedelta(hours=1)}

    meeting = log(InteractionKind.MEETING, occurred_at=tomorrow, **details)

    assert only_event(meeting, Interaction.MeetingLogged).occurred_at == tomorrow


def test_a_meeting_cannot_end_before_it_starts() -> None:
    details = {**DETAILS[InteractionKind.MEETING], "ends_at": AN_HOUR_AGO - timedelta(minutes=1)}

    with pytest.raises(InvalidValueError, match="no earlier than it starts"):
        log(InteractionKind.MEETING, **details)


def test_an_interaction_needs_a_time_zone() -> None:
    with pytest.raises(InvalidValueError, match="time zone"):
        log(InteractionKind.NOTE, occurred_at=AN_HOUR_AGO.replace(tzinfo=None))


def test_a_meeting_end_needs_a_time_zone() -> None:
    ends_at = (AN_HOUR_AGO + timedelta(minutes=30)).replace(tzinfo=None)
    details = {**DETAILS[InteractionKind.MEETING], "ends_at": ends_at}

    with pytest.raises(InvalidValueError, match="time zone"):
        log(InteractionKind.MEETING, **details)


@pytest.mark.parametrize("seconds", [-1, 7 * 24 * 3600 + 1])
def test_a_call_lasts_between_zero_seconds_and_a_week(seconds: int) -> None:
    details = {**DETAILS[InteractionKind.CALL], "duration_seconds": seconds}

    with pytest.raises(InvalidValueError, match="a call lasts"):
        log(InteractionKind.CALL, **details)


def test_a_text_has_at_most_a_hundred_thousand_characters() -> None:
    with pytest.raises(InvalidValueError, match="body"):
        log(InteractionKind.NOTE, body="x" * 100_001)


# --- correction -----------------------------------------------------------------


def test_correcting_an_interaction_records_the_changes_and_previous_values() -> None:
    call = a_call()
    earlier = AN_HOUR_AGO - timedelta(hours=1)

    call.correct({"notes": "Talked pricing and dates", "occurred_at": earlier}, now=NOW)

    corrected = only_event(call, Interaction.Corrected)
    assert corrected.changes == {"notes": "Talked pricing and dates", "occurred_at": earlier}
    assert corrected.previous == {"notes": "Talked pricing", "occurred_at": AN_HOUR_AGO}
    assert call.occurred_at == earlier
    assert call.details["notes"] == "Talked pricing and dates"


def test_a_correction_records_only_the_fields_that_change() -> None:
    call = a_call()

    call.correct({"notes": "Talked pricing", "outcome": CallOutcome.VOICEMAIL}, now=NOW)

    corrected = only_event(call, Interaction.Corrected)
    assert corrected.changes == {"outcome": CallOutcome.VOICEMAIL}
    assert corrected.previous == {"outcome": CallOutcome.CONNECTED}


def test_a_correction_that_changes_nothing_records_nothing() -> None:
    call = a_call()

    call.correct({"notes": "Talked pricing", "contact_ids": [CONTACT]}, now=NOW)
    call.correct({}, now=NOW)

    assert_no_new_events(call)


def test_a_correction_may_relink_an_interaction() -> None:
    call = a_call()
    deal_id = uuid4()

    call.correct({"contact_ids": [], "deal_id": deal_id}, now=NOW)

    corrected = only_event(call, Interaction.Corrected)
    assert corrected.changes == {"contact_ids": [], "deal_id": deal_id}
    assert corrected.previous == {"contact_ids": [CONTACT], "deal_id": None}


def test_a_correction_drops_repeated_contacts() -> None:
    call = a_call()
    other = uuid4()

    call.correct({"contact_ids": [other, CONTACT, other]}, now=NOW)
    call.correct({"contact_ids": [other, other, CONTACT]}, now=NOW)

    corrected = only_event(call, Interaction.Corrected)
    assert corrected.changes == {"contact_ids": [other, CONTACT]}
    assert call.contact_ids == [other, CONTACT]


def test_a_correction_cannot_name_a_field_the_kind_lacks() -> None:
    call = a_call()

    with refused(InvalidValueError, call, match="a call has no field ends_at, subject"):
        call.correct({"subject": "Quote", "ends_at": NOW, "notes": "changed"}, now=NOW)
    assert call.details["notes"] == "Talked pricing"


def test_a_correction_cannot_unlink_an_interaction_from_everything() -> None:
    call = a_call()

    with refused(InvalidValueError, call, match="linked to a contact"):
        call.correct({"contact_ids": []}, now=NOW)


def test_a_correction_cannot_move_a_call_into_the_future() -> None:
    call = a_call()

    with refused(InvalidValueError, call, match="in the future"):
        call.correct({"occurred_at": NOW + timedelta(hours=1)}, now=NOW)


def test_a_correction_cannot_make_a_meeting_end_before_it_starts() -> None:
    meeting = a_meeting()

    with refused(InvalidValueError, meeting, match="no earlier than it starts"):
        meeting.correct({"occurred_at": AN_HOUR_AGO + timedelta(hours=2)}, now=NOW)
    with refused(InvalidValueError, meeting, match="no earlier than it starts"):
        meeting.correct({"ends_at": AN_HOUR_AGO - timedelta(minutes=1)}, now=NOW)


def test_a_correction_cannot_drop_the_time_zone() -> None:
    call = a_call()

    with refused(InvalidValueError, call, match="time zone"):
        call.correct({"occurred_at": AN_HOUR_AGO.replace(tzinfo=None)}, now=NOW)


def test_a_correction_may_move_a_meeting_into_the_future() -> None:
    meeting = a_meeting()
    start = NOW + timedelta(days=2)

    meeting.correct({"occurred_at": start, "ends_at": start + timedelta(hours=1)}, now=NOW)

    assert only_event(meeting, Interaction.Corrected).changes["occurred_at"] == start


# --- retraction -----------------------------------------------------------------


def test_retracting_an_interaction_records_the_reason() -> None:
    call = a_call()

    call.retract("  logged against the wrong contact ")

    assert only_event(call, Interaction.Retracted).reason == "logged against the wrong contact"
    assert call.retracted
    assert call.retraction_reason == "logged against the wrong contact"


def test_a_retracted_interaction_cannot_be_corrected() -> None:
    call = a_call()
    call.retract("duplicate")
    given(call)

    with refused(InteractionRetractedError, call, match="retracted"):
        call.correct({"notes": "changed"}, now=NOW)


def test_a_retracted_interaction_cannot_be_retracted_again() -> None:
    call = a_call()
    call.retract("duplicate")
    given(call)

    with refused(InteractionRetractedError, call):
        call.retract("again")
