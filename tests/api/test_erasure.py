"""GDPR erasure end to end (both stores): a contact with distinctive personal values is
created, changed, talked to and projected, then erased over HTTP; afterwards the values
appear nowhere — no read model table, no history or as-of response, no `crm export` or
`crm replay` output, no stored row in plain, no key to open the sealed ones — while
`crm verify` passes and `crm rebuild` works and still shows them erased."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from eventsourcing.domain import Snapshot

from api.app import create_app
from api.settings import Settings
from api.wiring import build_crm, build_read_models
from commands.app import Crm
from commands.chain import ChainedPostgresApplicationRecorder
from commands.contacts import UpdateContact
from commands.errors import StoreUnavailableError
from commands.idempotency import fingerprint
from domain.contact import EMAIL_SCOPE, Contact
from domain.index import UniqueKey
from domain.roles import Role
from domain.values import key_id
from projections.host import ReadModels
from projections.registry import PROJECTORS
from tests.api.test_cli_reads import Site, make_site
from tests.conftest import invite
from tests.services import new_schema, serving

SECRETS = (
    "Zebulon",
    "Quixotefield",
    "zq-secret@example.org",
    "zq-other@example.org",
    "+44 7000 123987",
    "Chief Mystery Officer",
    "Moss-Quixote",
)


@dataclass
class Erasure:
    site: Site
    crm: Crm
    reads: ReadModels
    api: httpx.Client
    contact_id: str
    position: int


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "sqlite":
        return make_site(tmp_path)
    database_url: str = request.getfixturevalue("postgres_database")
    return make_site(tmp_path, f"{database_url}?schema={new_schema(database_url)}")


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Served:
    site: Site
    crm: Crm
    reads: ReadModels
    api: httpx.Client


@pytest.fixture
def served(site: Site) -> Iterator[Served]:
    crm = build_crm(site.settings)
    owner = invite(crm, "owner@example.com", Role.OWNER)
    reads = build_read_models(crm, Settings(), in_memory=True)
    reads.start()
    app = create_app(site.settings, crm=crm, reads=reads)
    headers = {"Authorization": f"Bearer {owner.token}"}
    try:
        with serving(app) as url, httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            yield Served(site, crm, reads, api)
    finally:
        reads.close()
        crm.close()


#: What the fixture's erasure gives as its reasons: a closed basis and a ticket.
ERASURE = {"basis": "consent-withdrawn", "reference": "GDPR-42"}
#: An idempotent change made before the erasure (its fingerprint is checked after).
IDEMPOTENT_CHANGE = {"job_title": "Chief Mystery Officer", "phones": ["+44 7000 123987"]}


@pytest.fixture
def erased(served: Served) -> Erasure:
    crm, reads, api = served.crm, served.reads, served.api
    contact = _ok(
        api.post(
            "/contacts",
            json={
                "first_name": "Zebulon",
                "last_name": "Quixotefield",
                "emails": ["zq-secret@example.org"],
                "phones": ["+44 7000 123987"],
                "job_title": "Chief Mystery Officer",
            },
        )
    )
    path = f"/contacts/{contact['id']}"
    _ok(api.patch(path, json={"last_name": "Moss-Quixote"}))
    _ok(api.patch(path, json={"emails": ["zq-secret@example.org", "zq-other@example.org"]}))
    _ok(api.patch(path, json=IDEMPOTENT_CHANGE, headers={"Idempotency-Key": "change-1"}))
    _ok(
        api.post(
            "/interactions/notes",
            json={
                "occurred_at": "2026-01-02T10:00:00Z",
                "contact_ids": [contact["id"]],
                "body": "Met at the fair",
            },
        )
    )
    # A deal naming the contact among its contacts: its own timeline shows the name.
    stages = [{"name": "Lead", "probability": 10}]
    pipeline = _ok(api.post("/pipelines", json={"name": "Sales", "stages": stages}))
    deal = {"title": "Fair deal", "amount": "10.00", "currency": "EUR"}
    opened = _ok(api.post("/deals", json={**deal, "pipeline_id": pipeline["id"]}))
    _ok(api.patch(f"/deals/{opened['id']}", json={"contact_ids": [contact["id"]]}))
    before = _ok(api.get(path))
    assert before["last_name"] == "Moss-Quixote"
    assert reads.wait_for("timeline", crm.position(), 30)
    deal_timeline = _ok(api.get(f"/timeline/deal/{opened['id']}"))
    assert "Moss-Quixote" in str(deal_timeline)  # so the scan below can fail
    assert reads.wait_for("directory", crm.position(), 30)
    erasure = _ok(api.post(f"{path}/erasure", json=ERASURE))
    for name in PROJECTORS:
        assert reads.wait_for(name, erasure["position"], 30)
    return Erasure(served.site, crm, reads, api, contact["id"], erasure["position"])


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_after_erasure_no_read_model_table_holds_the_personal_values(erased: Erasure) -> None:
    scanned = 0
    for name in PROJECTORS:
        con = erased.reads.store(name).reader()
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        for (table,) in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                _no_secret(repr(row))
            scanned += 1
    assert scanned > 5


def test_after_erasure_history_and_as_of_reads_show_the_fields_erased(erased: Erasure) -> None:
    path = f"/contacts/{erased.contact_id}"
    history = erased.api.get(f"{path}/history")
    assert history.status_code == 200, history.text
    _no_secret(history.text)
    assert "[erased]" in history.text
    first = erased.api.get(path, params={"version": 1})
    assert first.status_code == 200, first.text
    assert first.json()["first_name"] == "[erased]"
    assert first.json()["emails"] == []
    _no_secret(first.text)
    refused = erased.api.post(f"{path}/tags", json={"tag": "vip"})
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    # Erasing it again is done already: it succeeds and appends nothing.
    version = history.json()["items"][-1]["version"]
    again = erased.api.post(f"{path}/erasure", json={"basis": "objection"})
    assert again.status_code == 200, again.text
    assert again.json()["version"] == version
    assert _ok(erased.api.get(f"{path}/history"))["items"][-1]["version"] == version
    # Its address is free again.
    _ok(
        erased.api.post(
            "/contacts", json={"first_name": "New", "emails": ["zq-secret@example.org"]}
        )
    )


def _stored(crm: Crm) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes | None]]]:
    """Every stored event (topic, state as stored) and every key row (subject, key)."""
    recorder: Any = crm.recorder
    if isinstance(recorder, ChainedPostgresApplicationRecorder):
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
        keys = f'"{recorder.datastore.schema}"."{recorder.keys_table_name}"'
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT topic, state FROM {table} ORDER BY notification_id")
            rows = [(r["topic"], bytes(r["state"])) for r in cursor.fetchall()]
            cursor.execute(f"SELECT subject, data_key FROM {keys}")
            key_rows = [(r["subject"], r["data_key"]) for r in cursor.fetchall()]
    else:
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT topic, state FROM {recorder.events_table_name} ORDER BY rowid")
            rows = [(r[0], bytes(r[1])) for r in cursor.fetchall()]
            cursor.execute(f"SELECT subject, data_key FROM {recorder.keys_table_name}")
            key_rows = [(r[0], r[1]) for r in cursor.fetchall()]
    return rows, key_rows


def test_after_erasure_the_store_holds_only_ciphertext_and_no_key(erased: Erasure) -> None:
    rows, key_rows = _stored(erased.crm)
    stored = b"\n".join(state for _, state in rows).decode()
    _no_secret(stored)
    # created, 2 changes, the idempotent change's record (the change itself changed
    # nothing: its values were the contact's already). The 2 e-mail keys claimed are not
    # sealed: a key at a keyed id states no address (nothing of the person to seal).
    assert stored.count('"_sealed_"') >= 4
    subject = erased.contact_id.replace("-", "")
    assert (subject, None) in key_rows
    assert all(key is not None for s, key in key_rows if s != subject)


def test_after_erasure_no_stored_id_confirms_a_guessed_address(erased: Erasure) -> None:
    # A key's id is keyed with the store's secret: someone reading the events, an export
    # or the Kafka topic cannot compute it from a guessed address, as from a uuid5.
    crm = erased.crm
    stored = {
        UUID(str(n.originator_id))
        for n in crm.recorder.select_notifications(start=1, limit=100_000)
    }
    for address in ("zq-secret@example.org", "zq-other@example.org"):
        assert key_id(EMAIL_SCOPE, address) not in stored
        assert crm.email_key_id(address) in stored
        assert crm.load(UniqueKey, crm.email_key_id(address)).holder_id is None


def _crm(site: Site, *args: str) -> str:
    done = subprocess.run(
        ["crm", *args], env=site.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_after_erasure_the_cli_shows_nothing_verify_passes_and_rebuild_works(
    erased: Erasure, tmp_path: Path
) -> None:
    site = erased.site
    _no_secret(_crm(site, "replay", "contact", erased.contact_id, "--version", "1"))
    _no_secret(_crm(site, "history", "contact", erased.contact_id))
    _crm(site, "verify")
    _crm(site, "rebuild")
    export = tmp_path / "export"
    _crm(site, "export", "directory", "--output", str(export))
    _crm(site, "export", "audit", "--output", str(export))
    _crm(site, "export", "timeline", "--output", str(export))
    for file in export.rglob("*"):
        if file.is_file():
            _no_secret(file.read_bytes().decode(errors="replace"))
    scan = _crm(site, "sql", "SELECT * FROM audit_log", "--format", "json")
    _no_secret(scan)
    assert "[erased]" in scan


def test_subject_access_gives_everything_held_about_the_contact(
    api: httpx.Client, crm: Crm
) -> None:
    account = _ok(api.post("/accounts", json={"name": "Initech"}))
    contact = _ok(
        api.post(
            "/contacts",
            json={
                "first_name": "Milton",
                "last_name": "Waddams",
                "emails": ["milton@initech.example"],
                "account_id": account["id"],
            },
        )
    )
    other = _ok(api.post("/contacts", json={"first_name": "Bill"}))
    _ok(api.patch(f"/contacts/{contact['id']}", json={"job_title": "Collator"}))
    note = _ok(
        api.post(
            "/interactions/notes",
            json={
                "occurred_at": "2026-03-01T09:00:00Z",
                "contact_ids": [contact["id"]],
                "body": "Asked about the stapler",
            },
        )
    )
    _ok(
        api.post(
            "/interactions/notes",
            json={"occurred_at": "2026-03-01T09:00:00Z", "contact_ids": [other["id"]], "body": "x"},
        )
    )
    task = _ok(
        api.post(
            "/tasks",
            json={
                "title": "Return the stapler",
                "linked_kind": "contact",
                "linked_id": contact["id"],
            },
        )
    )
    stages = [{"name": "Lead", "probability": 10}]
    pipeline = _ok(api.post("/pipelines", json={"name": "Sales", "stages": stages}))
    deal = _ok(
        api.post(
            "/deals",
            json={
                "title": "Basement lease",
                "amount": "10.00",
                "currency": "EUR",
                "pipeline_id": pipeline["id"],
                "contact_ids": [contact["id"]],
            },
        )
    )

    response = api.get(
        f"/contacts/{contact['id']}/subject-access", params={"min_position": deal["position"]}
    )

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["contact"]["first_name"] == "Milton"
    assert document["contact"]["job_title"] == "Collator"
    assert document["erased"] is False
    assert [e["action"] for e in document["history"]] == [
        "Contact.Created",
        "Contact.DetailsChanged",
    ]
    assert document["history"][1]["changes"]["job_title"] == {"before": None, "after": "Collator"}
    assert [i["id"] for i in document["interactions"]] == [note["id"]]
    assert [t["id"] for t in document["tasks"]] == [task["id"]]
    assert [d["id"] for d in document["deals"]] == [deal["id"]]
    assert document["account"]["name"] == "Initech"
    assert [row["action"] for row in document["audit"]] == [
        "Contact.Created",
        "Contact.DetailsChanged",
    ]


def test_crm_erase_contact_erases_and_subject_access_then_shows_nothing_personal(
    erased: Erasure,
) -> None:
    site = erased.site
    document = json.loads(_crm(site, "subject-access", erased.contact_id))
    assert document["erased"] is True
    assert document["contact"]["first_name"] == "[erased]"
    _no_secret(json.dumps(document))
    contact = _ok(
        erased.api.post("/contacts", json={"first_name": "Zebulon", "phones": ["+44 7000 123987"]})
    )
    erase = ["erase-contact", contact["id"], "--basis", "objection", "--reference", "DSR-7"]
    assert "Erased contact" in _crm(site, *erase)
    _no_secret(_crm(site, "replay", "contact", contact["id"], "--version", "1"))
    # Run again: the erasure is done; it says so, appends nothing and succeeds.
    assert "was already erased" in _crm(site, *erase)
    free_text = ["--basis", "objection", "--reference", "Zebulon Q"]
    refused = _run(site, "erase-contact", contact["id"], *free_text)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "reference" in refused.stderr


def _run(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["crm", *args], env=site.env, capture_output=True, text=True, timeout=120, check=False
    )


def test_an_erasure_says_why_by_a_basis_and_a_ticket_never_by_free_text(served: Served) -> None:
    api = served.api
    contact = _ok(api.post("/contacts", json={"first_name": "Zebulon"}))
    path = f"/contacts/{contact['id']}"
    for body in (
        {"reason": "Zebulon Quixotefield asked"},  # free text is no longer taken
        {"basis": "consent-withdrawn", "reference": "Zebulon Quixotefield asked"},
        {"basis": "unrecorded"},  # what erasures from before the basis read as
        {},
    ):
        refused = api.post(f"{path}/erasure", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert _ok(api.get(path))["version"] == 1  # nothing was written

    _ok(api.post(f"{path}/erasure", json=ERASURE))

    rows, _ = _stored(served.crm)
    (erasure,) = [orjson.loads(state) for topic, state in rows if topic.endswith("Erased")]
    assert "reason" not in erasure
    assert (erasure["basis"]["_data_"], erasure["reference"]) == ("consent-withdrawn", "GDPR-42")
    history = _ok(api.get(f"{path}/history"))["items"]
    assert [entry["action"] for entry in history] == ["Contact.Created", "Contact.Erased"]


def test_after_erasure_its_idempotency_record_confirms_nothing_and_a_retry_is_a_conflict(
    erased: Erasure,
) -> None:
    path = f"/contacts/{erased.contact_id}"
    change = UpdateContact(contact_id=UUID(erased.contact_id), **IDEMPOTENT_CHANGE)
    rows, _ = _stored(erased.crm)
    records = [state for topic, state in rows if topic.endswith("IdempotencyRecord.Recorded")]
    assert len(records) == 1
    # Whoever holds the store cannot check a guessed request (a guessed phone) against it.
    assert fingerprint(change).encode() not in records[0]
    assert b'"_sealed_"' in records[0]

    retry = erased.api.patch(path, json=IDEMPOTENT_CHANGE, headers={"Idempotency-Key": "change-1"})

    assert retry.status_code == 409, retry.text
    assert retry.headers["content-type"] == "application/problem+json"
    assert "contact since erased" in retry.json()["detail"]


def test_an_address_of_an_erased_contact_taken_again_is_stored_in_no_key_event(
    erased: Erasure,
) -> None:
    api = erased.api
    new = _ok(
        api.post("/contacts", json={"first_name": "New", "emails": ["zq-secret@example.org"]})
    )

    taken = api.post("/contacts", json={"first_name": "Third", "emails": ["ZQ-Secret@example.org"]})

    assert taken.status_code == 409
    assert taken.json()["detail"] == "zq-secret@example.org already belongs to another contact"
    key = erased.crm.load(UniqueKey, erased.crm.email_key_id("zq-secret@example.org"))
    assert key.keyed
    assert key.holder_id == UUID(new["id"])
    # Neither the erased first holder's claim nor the new holder's states the address,
    # sealed or not: once the new holder is erased too, nothing links it to them.
    opened = erased.crm.recorder.select_events(key.id)  # sealed states opened
    assert len(opened) >= 2
    assert all(b"zq-secret" not in event.state for event in opened)
    rows, _ = _stored(erased.crm)
    key_events = [
        (topic, state)
        for topic, state in rows
        if ":UniqueKey." in topic and b'"contact-emails"' in state
    ]
    assert {topic.rpartition(".")[2] for topic, _ in key_events} >= {"Claimed", "Reclaimed"}
    for _, state in key_events:
        assert b"zq-secret" not in state
        assert not orjson.loads(state).get("key")


def test_a_contact_stored_before_sealing_existed_is_refused_not_half_erased(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, crm = served.api, served.crm
    # As a release before sealing wrote it: in plain, with no key.
    monkeypatch.setattr(crm.recorder, "seal_events", lambda cursor, events: list(events))
    contact = _ok(api.post("/contacts", json={"first_name": "Oldtimer", "emails": ["o@x.org"]}))
    monkeypatch.undo()
    path = f"/contacts/{contact['id']}"
    _ok(api.patch(path, json={"job_title": "Sealed since"}))

    refused = api.post(f"{path}/erasure", json=ERASURE)

    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/unsealed-history"
    assert "at version 1 hold personal fields in plain" in refused.json()["detail"]
    after = _ok(api.get(path))
    assert (after["version"], after["first_name"]) == (2, "Oldtimer")
    _, key_rows = _stored(crm)
    assert dict(key_rows)[UUID(contact["id"]).hex] is not None
    cli = _run(served.site, "erase-contact", contact["id"], "--basis", "objection")
    assert cli.returncode == 1
    assert cli.stderr.count("\n") == 1, cli.stderr
    assert "stored before sealing existed" in cli.stderr
    assert _ok(api.get(path))["version"] == 2


def test_an_erasure_whose_snapshots_cannot_be_shredded_is_not_stored_and_a_rerun_finishes_it(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, crm = served.api, served.crm
    contact = _ok(
        api.post("/contacts", json={"first_name": "Zebulon", "last_name": "Quixotefield"})
    )
    contact_id = UUID(contact["id"])
    path = f"/contacts/{contact_id}"
    assert crm.snapshots is not None
    # As releases before sealing took them: the fields in plain.
    snapshot = Snapshot.take(crm.load(Contact, contact_id))
    crm.snapshots.put([snapshot])

    def unavailable(record_ids: list[UUID]) -> None:
        raise StoreUnavailableError("the event store is unavailable")

    monkeypatch.setattr(crm, "shred_snapshots", unavailable)
    failed = api.post(f"{path}/erasure", json=ERASURE)
    monkeypatch.undo()

    assert failed.status_code == 503, failed.text
    # Nothing half-done: not erased, its key alive, its snapshot still there to shred.
    assert not crm.load(Contact, contact_id).erased
    assert dict(_stored(crm)[1])[contact_id.hex] is not None
    assert list(crm.snapshots.get(contact_id))
    _ok(api.post(f"{path}/erasure", json=ERASURE))  # the retry does it all
    assert crm.load(Contact, contact_id).erased
    assert list(crm.snapshots.get(contact_id)) == []
    # A snapshot left over (an earlier release shredded after the erasure, and could
    # crash in between): running the erasure again shreds it.
    crm.snapshots.put([snapshot])
    rerun = _crm(served.site, "erase-contact", str(contact_id), "--basis", "consent-withdrawn")
    assert "was already erased" in rerun
    assert list(crm.snapshots.get(contact_id)) == []
