"""The Kafka relay after a GDPR erasure (both stores, real Tansu broker): what it
publishes from then on shows the contact's personal fields erased, also when it
publishes the whole history again to a new topic."""

from __future__ import annotations

import uuid

import orjson

from commands.contacts import CreateContact, EraseContact, UpdateContact
from commands.context import Context
from commands.handlers import execute
from domain.contact import EMAIL_SCOPE, ErasureBasis
from domain.roles import Authority, Role
from domain.values import key_id
from tests.conftest import invite
from tests.projections.test_crash import open_crm
from tests.streaming.test_relay import env, read_topic, relay

__all__ = ["env"]

SECRETS = ("Philippa", "Wolstenholme", "pw-hidden@example.net", "+33 6 55 44 33 22")


def _published(env: dict[str, str]) -> list[dict[str, object]]:
    messages = read_topic(env["CRM_KAFKA_BOOTSTRAP"], env["CRM_KAFKA_TOPIC"])
    return [orjson.loads(m.value) for records in messages.values() for m in records]


def test_messages_published_after_an_erasure_show_the_fields_erased(
    env: dict[str, str],
) -> None:
    system = Context(actor=Authority.system(), source="cli")
    crm = open_crm(env)
    try:
        create = CreateContact(
            first_name="Philippa",
            last_name="Wolstenholme",
            emails=["pw-hidden@example.net"],
            phones=["+33 6 55 44 33 22"],
            owner_id=invite(crm, "owner@example.com", Role.OWNER).user.id,
        )
        contact = execute(crm, create, system)
        execute(crm, UpdateContact(contact_id=contact.id, last_name="Wolstenholme-Ray"), system)
        done = relay(env)
        assert done.returncode == 0, done.stderr
        before = orjson.dumps(_published(env)).decode()
        assert all(secret in before for secret in SECRETS)  # the check below can fail
        # Nor can a guessed address be confirmed by the id of its key (keyed, not uuid5).
        guessed = key_id(EMAIL_SCOPE, "pw-hidden@example.net")
        assert str(guessed) not in before
        assert guessed.hex not in before
        assert str(crm.email_key_id("pw-hidden@example.net")) in before

        erase = EraseContact(contact_id=contact.id, basis=ErasureBasis.CONSENT_WITHDRAWN)
        erasure = execute(crm, erase, system)
    finally:
        crm.close()
    done = relay(env)
    assert done.returncode == 0, done.stderr
    later = [m for m in _published(env) if int(str(m["position"])) >= erasure.position]
    assert later, "the erasure was published"
    for secret in SECRETS:
        assert secret not in orjson.dumps(later).decode()

    env = {**env, "CRM_KAFKA_TOPIC": f"crm.events.{uuid.uuid4().hex[:12]}"}
    done = relay(env)
    assert done.returncode == 0, done.stderr
    everything = orjson.dumps(_published(env)).decode()
    for secret in SECRETS:
        assert secret not in everything
    assert "[erased]" in everything
