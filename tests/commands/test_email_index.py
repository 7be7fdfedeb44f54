"""Contacts' e-mail keys sit at ids keyed with a secret of the store (HMAC-SHA256), not
at a uuid5 of the address that anyone could compute; every Crm and every process on a
store derives the same ids; keys of stores written before (at the uuid5 ids) keep
holding their addresses, and no address can be held at both ids. On both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from commands.app import Crm, store_env
from commands.contacts import CreateContact, RemoveContact, UpdateContact, claim_emails
from commands.errors import ConflictError
from commands.handlers import execute
from commands.importing import Importer, SourceRow
from commands.persistence import Meta
from domain.contact import EMAIL_SCOPE, Contact
from domain.index import KeyTakenError, UniqueKey
from domain.values import key_id
from tests.conftest import Person, Store

ADDRESS = "ada@example.com"


def create(crm: Crm, owner: Person, name: str, *emails: str) -> UUID:
    return execute(crm, CreateContact(first_name=name, emails=list(emails)), owner.ctx).id


def stored_ids(crm: Crm) -> set[UUID]:
    notifications = crm.recorder.select_notifications(start=1, limit=100_000)
    return {UUID(str(n.originator_id)) for n in notifications}


def test_a_contacts_e_mail_key_is_not_at_the_uuid5_of_its_address(crm: Crm, owner: Person) -> None:
    contact_id = create(crm, owner, "Ada", ADDRESS)

    key_id_now = crm.email_key_id(ADDRESS)
    assert key_id_now != key_id(EMAIL_SCOPE, ADDRESS)
    assert key_id_now.version == 8
    key = crm.load(UniqueKey, key_id_now)
    # The id stands for the address, which the key does not store.
    assert (key.key, key.holder_id) == ("", contact_id)
    assert ADDRESS.encode() not in b"".join(e.state for e in crm.recorder.select_events(key.id))
    ids = stored_ids(crm)
    assert key_id_now in ids
    assert key_id(EMAIL_SCOPE, ADDRESS) not in ids


def test_users_e_mail_keys_keep_their_uuid5_ids(crm: Crm, owner: Person) -> None:
    # Only contacts' addresses are keyed: a user's address is not a data subject's here.
    assert crm.find(UniqueKey, key_id("user-emails", "owner@example.com")) is not None


def test_every_crm_on_a_store_derives_the_same_ids(store: Store, crm: Crm, owner: Person) -> None:
    contact_id = create(crm, owner, "Ada", ADDRESS)
    other = store.open()
    try:
        assert other.index_secret == crm.index_secret
        assert other.email_key_id(ADDRESS) == crm.email_key_id(ADDRESS)
        assert other.load(UniqueKey, other.email_key_id(ADDRESS)).holder_id == contact_id
        refused = CreateContact(first_name="Eve", emails=[ADDRESS])
        with pytest.raises(KeyTakenError):
            execute(other, refused, owner.ctx)
    finally:
        other.close()


def test_two_stores_have_different_secrets(store: Store, tmp_path: Path) -> None:
    mine = store.open()
    elsewhere = Crm(env=store_env(None, str(tmp_path / "elsewhere.sqlite")))
    try:
        assert mine.email_key_id(ADDRESS) != elsewhere.email_key_id(ADDRESS)
    finally:
        mine.close()
        elsewhere.close()


PRINT_KEY_ID = f"""
import json, sys
from commands.app import Crm, store_env
crm = Crm(env=json.loads(sys.argv[1]))
print(crm.email_key_id({ADDRESS!r}))
crm.close()
"""


def test_processes_starting_at_once_on_a_new_store_make_one_secret(store: Store) -> None:
    # Nothing exists yet: the processes race on creating the tables (one at a time on
    # PostgreSQL, ``commands.app.one_at_a_time``) and on making the secret.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PRINT_KEY_ID, json.dumps(store.env)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [p.returncode for p in processes] == [0] * 6, [err for _, err in outputs]
    derived = {UUID(out.strip()) for out, _ in outputs}
    crm = store.open()
    try:
        assert derived == {crm.email_key_id(ADDRESS)}
    finally:
        crm.close()


def test_concurrent_claims_of_one_address_collide_in_the_store(
    store: Store, crm: Crm, owner: Person
) -> None:
    other = store.open()
    try:
        first = Contact.create("Ada", "", owner.user.id)
        second = Contact.create("Eve", "", owner.user.id)
        # Both decide before either saves: each finds the address free.
        mine = claim_emails(crm, first.id, [ADDRESS])
        theirs = claim_emails(other, second.id, [ADDRESS])
        assert [k.id for k in mine] == [k.id for k in theirs]
        meta = Meta(actor=None, request_id="test", source="cli")
        crm.save_with(meta, first, *mine)
        with pytest.raises(ConflictError):
            other.save_with(meta, second, *theirs)
    finally:
        other.close()
    assert crm.load(UniqueKey, crm.email_key_id(ADDRESS)).holder_id == first.id
    assert crm.find(Contact, second.id) is None


# Stores written before keyed ids: their contacts' keys are at the uuid5 ids.


@pytest.fixture
def legacy_holder(crm: Crm, owner: Person, monkeypatch: pytest.MonkeyPatch) -> UUID:
    """A contact holding ``ADDRESS`` as a release before keyed ids stored it: at uuid5."""
    monkeypatch.setattr(
        "commands.contacts.email_key_id", lambda secret, email: key_id(EMAIL_SCOPE, email)
    )
    contact_id = create(crm, owner, "Oldtimer", ADDRESS)
    monkeypatch.undo()
    assert crm.load(UniqueKey, key_id(EMAIL_SCOPE, ADDRESS)).holder_id == contact_id
    assert crm.find(UniqueKey, crm.email_key_id(ADDRESS)) is None
    return contact_id


def test_an_address_held_at_its_uuid5_id_cannot_be_taken_at_its_keyed_id(
    crm: Crm, owner: Person, legacy_holder: UUID
) -> None:
    with pytest.raises(KeyTakenError, match="already belongs to another contact"):
        create(crm, owner, "Eve", ADDRESS.upper())

    assert crm.find(UniqueKey, crm.email_key_id(ADDRESS)) is None
    # Its holder keeps it, as before, also when changing its other addresses.
    execute(
        crm,
        UpdateContact(contact_id=legacy_holder, emails=[ADDRESS, "ada2@example.com"]),
        owner.ctx,
    )
    assert crm.load(UniqueKey, key_id(EMAIL_SCOPE, ADDRESS)).holder_id == legacy_holder
    assert crm.load(UniqueKey, crm.email_key_id("ada2@example.com")).holder_id == legacy_holder


def test_an_address_freed_at_its_uuid5_id_is_claimed_again_at_its_keyed_id_only(
    crm: Crm, owner: Person, legacy_holder: UUID
) -> None:
    execute(crm, RemoveContact(contact_id=legacy_holder), owner.ctx)
    assert crm.load(UniqueKey, key_id(EMAIL_SCOPE, ADDRESS)).holder_id is None

    eve = create(crm, owner, "Eve", ADDRESS)

    assert crm.load(UniqueKey, crm.email_key_id(ADDRESS)).holder_id == eve
    legacy = crm.load(UniqueKey, key_id(EMAIL_SCOPE, ADDRESS))
    assert (legacy.holder_id, legacy.version) == (None, 2)  # claimed, released: no more
    with pytest.raises(KeyTakenError):
        create(crm, owner, "Mallory", ADDRESS)
    # Eve lets it go: it is freed at the keyed id, and the next claim lands there too.
    execute(crm, UpdateContact(contact_id=eve, emails=[]), owner.ctx)
    assert crm.load(UniqueKey, crm.email_key_id(ADDRESS)).holder_id is None
    mallory = create(crm, owner, "Mallory", ADDRESS)
    assert crm.load(UniqueKey, crm.email_key_id(ADDRESS)).holder_id == mallory
    assert crm.load(UniqueKey, key_id(EMAIL_SCOPE, ADDRESS)).version == 2


def test_the_importer_refuses_an_address_held_at_its_uuid5_id(
    crm: Crm, owner: Person, legacy_holder: UUID
) -> None:
    people = [("Eve", ADDRESS), ("Bo", "bo@x.org"), ("Cy", "BO@x.org")]
    rows = [
        SourceRow(line, {"kind": "contact", "external_id": name, "first_name": name, "emails": [e]})
        for line, (name, e) in enumerate(people, start=1)
    ]

    report = Importer(crm, owner.ctx, "legacy-batch").run(rows)

    assert [(e.line, e.reason) for e in report.refused] == [
        (1, f"{ADDRESS} already belongs to another contact"),
        (3, "bo@x.org already belongs to another contact"),
    ]
    assert report.written == 1
    assert crm.find(UniqueKey, crm.email_key_id(ADDRESS)) is None
    assert crm.load(UniqueKey, crm.email_key_id("bo@x.org")).key == ""  # the id stands for it
