"""Bulk import: every good row written exactly once, every bad row reported with its
line and reason and writing nothing, re-running writes nothing new; on both stores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.accounts import ArchiveAccount
from commands.app import Crm
from commands.handlers import execute
from commands.import_files import FileFormat, file_batch_id, read_rows
from commands.import_rows import import_id
from commands.importing import Importer, ImportReport, SourceRow
from commands.persistence import META_KEY
from commands.pipelines import CreatePipeline, StageSpec
from domain.account import Account
from domain.contact import Contact
from domain.deal import Deal
from domain.interaction import Interaction, InteractionKind
from domain.roles import Role
from replay.verify import verify
from tests.conftest import Person, invite
from tests.services import StoreFactory

HEADER = (
    "kind,external_id,name,country,first_name,last_name,emails,account,owner,"
    "title,amount,currency,pipeline,stage,contacts,type,occurred_at,body,parent"
)
CSV = (
    HEADER
    + """
account,A1,Acme,DE,,,,,,,,,,,,,,,
account,A2,Bad Country,Germany,,,,,,,,,,,,,,,
account,A3,Acme Child,,,,,,,,,,,,,,,,A1
contact,C1,,,Ada,Lovelace,ada@example.com;ADA2@example.com,A1,,,,,,,,,,,
contact,C2,,,Bob,,bob@example.com,A2,,,,,,,,,,,
contact,C3,,,Eve,,ada@example.com,,,,,,,,,,,,
contact,C4,,,Cy,,not-an-address,,,,,,,,,,,,
deal,D1,,,,,,A1,,Fleet,12500.00,EUR,Sales,Won,C1,,,,
deal,D2,,,,,,,,Gold,-5,EUR,Sales,,,,,,
deal,D3,,,,,,,,Boat,100,EUR,Nope,,,,,,
interaction,I1,,,,,,A1,,,,,,,C1,note,2024-03-01T10:00:00+00:00,"first call, then
a note on two lines",
interaction,I2,,,,,,,,,,,,,C2,note,2024-03-01T10:00:00+00:00,about Bob,
account,A1,Acme again,,,,,,,,,,,,,,,,
contact,C5,,,Dan,,,,nobody@example.com,,,,,,,,,,
"""
)


def pipeline(crm: Crm, owner: Person) -> None:
    stages = [StageSpec(name="Lead", probability=10), StageSpec(name="Won", probability=100)]
    execute(crm, CreatePipeline(name="Sales", stages=stages), owner.ctx)


def import_file(
    crm: Crm, owner: Person, path: Path, batch_rows: int = 3, **options: Any
) -> ImportReport:
    file_format = FileFormat(path.suffix.lstrip("."))
    batch_id, _ = file_batch_id(path, file_format, None)
    importer = Importer(crm, owner.ctx, batch_id, batch_rows=batch_rows, **options)
    return importer.run(read_rows(path, file_format))


def stored(crm: Crm) -> list[tuple[str, dict[str, Any]]]:
    return [
        (n.topic, json.loads(n.state))
        for n in crm.recorder.select_notifications(start=1, limit=100_000)
    ]


def test_bad_rows_are_reported_with_line_and_reason_and_every_good_row_is_written_once(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    pipeline(crm, owner)
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    before = crm.position()

    report = import_file(crm, owner, path)

    reasons = {e.line: e.reason for e in report.refused}
    assert sorted(reasons) == [3, 6, 7, 8, 10, 11, 14, 15, 16]
    assert "country" in reasons[3]
    assert "account 'A2' was refused (line 3)" in reasons[6]
    assert "ada@example.com already belongs to another contact" in reasons[7]
    assert "emails" in reasons[8]
    assert "amount" in reasons[10]
    assert "no pipeline 'Nope'" in reasons[11]
    assert "contact 'C2' was refused (line 6)" in reasons[14]
    assert "external_id 'A1' again (line 2)" in reasons[15]
    assert "no user with e-mail nobody@example.com" in reasons[16]
    assert (report.written, report.skipped) == (5, 0)

    acme = crm.load(Account, import_id("account", "A1"))
    child = crm.load(Account, import_id("account", "A3"))
    ada = crm.load(Contact, import_id("contact", "C1"))
    deal = crm.load(Deal, import_id("deal", "D1"))
    note = crm.load(Interaction, import_id("interaction", "I1"))
    assert (acme.name, acme.country, acme.owner_id) == ("Acme", "DE", owner.user.id)
    assert child.parent_id == acme.id
    assert ada.emails == ["ada@example.com", "ada2@example.com"]
    assert ada.account_id == acme.id
    assert (deal.account_id, deal.contact_ids, str(deal.amount)) == (acme.id, [ada.id], "12500.00")
    assert note.kind is InteractionKind.NOTE
    assert note.details["body"].endswith("two lines")
    assert note.contact_ids == [ada.id]
    assert note.account_id == acme.id

    events = stored(crm)[before:]
    # Each good row once (+ Ada's two e-mail keys), and nothing of the bad rows.
    created = Counter(topic.rsplit(".", 1)[-1] for topic, _ in events)
    assert created == Counter(
        {"Registered": 2, "Created": 1, "Claimed": 2, "Opened": 1, "NoteLogged": 1}
    )
    assert report.events == len(events) == 7
    assert {state[META_KEY]["import_batch"] for _, state in events} == {report.batch_id}
    assert {state[META_KEY]["source"] for _, state in events} == {"import"}
    assert verify(crm.recorder).ok


def test_running_the_same_import_again_writes_nothing_new(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    pipeline(crm, owner)
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    first = import_file(crm, owner, path)
    position = crm.position()

    again = import_file(crm, owner, path, batch_rows=100)

    assert crm.position() == position
    assert again.batch_id == first.batch_id
    assert (again.written, again.skipped, again.events) == (0, first.written, 0)
    assert [e.line for e in again.refused] == [e.line for e in first.refused]


def test_rows_refer_to_records_of_an_earlier_import_by_external_id_or_to_records_by_id(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    first = tmp_path / "accounts.jsonl"
    first.write_text('{"kind": "account", "external_id": 7, "name": "Initech"}\n')
    import_file(crm, owner, first)
    initech = import_id("account", "7")
    second = tmp_path / "contacts.jsonl"
    second.write_text(
        "\n".join(
            [
                '{"kind": "contact", "external_id": "P1", "first_name": "Peter", "account": "7"}',
                "",
                json.dumps(
                    {
                        "kind": "contact",
                        "external_id": "P2",
                        "first_name": "Milton",
                        "account": str(initech),
                        "emails": ["milton@initech.example"],
                        "owner": owner.user.email,
                    }
                ),
                "[1, 2]",
                "{not json",
            ]
        )
    )

    report = import_file(crm, owner, second)

    assert [(e.line, e.reason) for e in report.refused] == [
        (4, "a line of JSON Lines is a JSON object"),
        (5, report.refused[1].reason),
    ]
    assert report.refused[1].reason.startswith("not JSON")
    peter = crm.load(Contact, import_id("contact", "P1"))
    milton = crm.load(Contact, import_id("contact", "P2"))
    assert peter.account_id == milton.account_id == initech


def test_an_auditor_cannot_import(crm: Crm, owner: Person) -> None:
    auditor = invite(crm, "audit@example.com", Role.AUDITOR, by=owner.user.authority)
    with pytest.raises(Exception, match="read-only"):
        Importer(crm, auditor.ctx, "b")


# Random mixes of good and bad rows: the good ones all in, the bad ones none.

GOOD, BAD_NAME, BAD_REF = "good", "bad-name", "bad-ref"


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(st.sampled_from([GOOD, BAD_NAME, BAD_REF]), min_size=1, max_size=25))
def test_good_rows_are_all_in_and_bad_rows_none(empty_store: StoreFactory, plan: list[str]) -> None:
    crm = Crm(env=empty_store())
    try:
        owner = invite(crm, "owner@example.com", Role.OWNER)
        rows = []
        for n, what in enumerate(plan):
            account = {"kind": "account", "external_id": f"A{n}", "name": f"Co {n}"}
            if what == BAD_NAME:
                account["name"] = "x" * 300
            rows.append(SourceRow(2 * n + 1, account))
            contact = {"kind": "contact", "external_id": f"C{n}", "first_name": "P"}
            contact["account"] = f"A{n}" if what != BAD_REF else f"missing-{n}"
            rows.append(SourceRow(2 * n + 2, contact))
        report = Importer(crm, owner.ctx, "batch", batch_rows=7).run(rows)

        good = [n for n, what in enumerate(plan) if what == GOOD]
        assert report.written == 2 * len(good) + plan.count(BAD_REF)
        for n, what in enumerate(plan):
            found_account = crm.find(Account, import_id("account", f"A{n}"))
            found_contact = crm.find(Contact, import_id("contact", f"C{n}"))
            assert (found_account is not None) == (what != BAD_NAME)
            assert (found_contact is not None) == (what == GOOD)
        refused_lines = {e.line for e in report.refused}
        expected = {2 * n + 1 for n, w in enumerate(plan) if w == BAD_NAME} | {
            2 * n + 2 for n, w in enumerate(plan) if w != GOOD
        }
        assert refused_lines == expected
    finally:
        crm.close()


def test_a_row_linking_to_an_account_archived_since_its_import_is_refused(
    crm: Crm, owner: Person, tmp_path: Path
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"kind": "account", "external_id": "A", "name": "Gone"}\n')
    import_file(crm, owner, path)
    execute(crm, ArchiveAccount(account_id=import_id("account", "A")), owner.ctx)
    lines = [
        '{"kind": "account", "external_id": "A", "name": "Gone"}',
        '{"kind": "contact", "external_id": "P", "first_name": "Pam", "account": "A"}',
    ]
    path.write_text("\n".join(lines))

    report = import_file(crm, owner, path)

    assert (report.written, report.skipped) == (0, 1)
    assert [(e.line, e.reason) for e in report.refused] == [
        (2, f"account {import_id('account', 'A')} is archived")
    ]
    assert crm.find(Contact, import_id("contact", "P")) is None
