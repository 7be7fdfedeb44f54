"""The wire envelope: every event of a realistic command history, on SQLite and on
PostgreSQL, becomes a message that validates against ``envelope.schema.json``, carries
what the store holds, and reads back as the same envelope."""

from __future__ import annotations

from datetime import datetime

import jsonschema
import orjson
import pytest

from commands.app import Crm
from projections.events import decode
from streaming.envelope import Envelope, event_id, schema
from tests.projections.test_crash import write_history


def validator() -> jsonschema.Draft202012Validator:
    loaded = schema()
    jsonschema.Draft202012Validator.check_schema(loaded)
    return jsonschema.Draft202012Validator(loaded, format_checker=jsonschema.FormatChecker())


def test_every_event_of_a_command_history_validates_and_round_trips(crm: Crm) -> None:
    head = write_history(crm, rounds=3)
    notifications = crm.recorder.select_notifications(start=1, limit=head)
    assert len(notifications) >= 20
    check = validator()
    types = set()
    for notification in notifications:
        envelope = Envelope.from_notification(notification)
        message = envelope.to_json()
        check.validate(orjson.loads(message))
        assert Envelope.from_json(message) == envelope
        recorded = decode(notification)
        assert envelope.position == notification.id
        assert envelope.version == notification.originator_version
        assert envelope.aggregate_id == recorded.aggregate_id
        assert envelope.key == recorded.aggregate_id.encode()
        assert envelope.type == recorded.name
        assert envelope.aggregate_kind == envelope.type.split(".")[0].lower()
        assert envelope.payload == recorded.data
        assert not {"_meta", "timestamp", "originator_id", "originator_version"} & set(
            envelope.payload
        )
        assert datetime.fromisoformat(envelope.recorded_at).utcoffset() is not None
        assert envelope.actor is not None
        assert envelope.source in ("api", "cli")
        types.add(envelope.type)
    assert {"Account.Registered", "Contact.Created", "Deal.Opened", "Pipeline.Created"} <= types
    ids = [Envelope.from_notification(n).id for n in notifications]
    assert len(set(ids)) == len(ids)


def test_an_event_id_is_stable_and_names_one_version_of_one_aggregate() -> None:
    aggregate = "0b6f1c9e-2f6e-4d7a-9a51-1f0e7b3c2d10"
    assert event_id(aggregate, 3) == event_id(aggregate, 3)
    assert event_id(aggregate, 3) != event_id(aggregate, 4)
    assert event_id(aggregate, 3) != event_id("1" + aggregate[1:], 3)


@pytest.mark.parametrize(
    "message",
    [b"{", b"[]", b'{"spec_version": 1}', b'{"spec_version": 2, "id": "x"}', b"null"],
)
def test_what_is_not_an_envelope_is_refused(message: bytes) -> None:
    with pytest.raises(ValueError, match="envelope"):
        Envelope.from_json(message)


def test_the_schema_refuses_a_message_missing_a_field_or_with_a_bad_id() -> None:
    check = validator()
    good = {
        "spec_version": 1,
        "id": event_id("0b6f1c9e-2f6e-4d7a-9a51-1f0e7b3c2d10", 1),
        "type": "Deal.Won",
        "aggregate_kind": "deal",
        "aggregate_id": "0b6f1c9e-2f6e-4d7a-9a51-1f0e7b3c2d10",
        "version": 1,
        "position": 7,
        "recorded_at": "2026-11-23T18:30:45.123456+00:00",
        "actor": "system",
        "request_id": None,
        "source": "cli",
        "payload": {},
    }
    check.validate(good)
    for broken in (
        {k: v for k, v in good.items() if k != "payload"},
        {**good, "aggregate_id": "not-a-uuid"},
        {**good, "version": 0},
        {**good, "extra": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check.validate(broken)
