"""Import over real HTTP (``POST /imports``) and through the real ``crm import`` script,
on SQLite and PostgreSQL; the read models show what was imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.routes.imports import MAX_ROWS
from commands.app import Crm
from domain.roles import Role
from tests.api.test_auth import written_since
from tests.api.test_cli_reads import Site, build_read_models_here, seed, site  # noqa: F401
from tests.conftest import Person, invite

ROWS: list[dict[str, Any]] = [
    {"kind": "account", "external_id": "A1", "name": "Umbrella", "country": "GB"},
    {"kind": "account", "external_id": "A2", "name": ""},
    {"kind": "contact", "external_id": "C1", "first_name": "Alice", "account": "A1"},
    {"kind": "contact", "external_id": "C2", "first_name": "Bob", "account": "A2"},
    {"kind": "task", "external_id": "T1"},
    {
        "kind": "contact",
        "external_id": "C3",
        "first_name": "Carol",
        "emails": ["c@umbrella.example"],
    },
]


def test_an_integration_imports_rows_over_http_and_the_read_models_show_them(
    api: httpx.Client,
) -> None:
    response = api.post("/imports", json={"rows": ROWS})

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["written"], result["skipped"], result["refused"]) == (3, 0, 3)
    errors = {e["index"]: e["reason"] for e in result["errors"]}
    assert sorted(errors) == [1, 3, 4]
    assert "name" in errors[1]
    assert "account 'A2' was refused (line 1)" in errors[3]
    assert "kind" in errors[4]
    contacts = api.get("/directory/contacts", params={"min_position": result["position"]})
    assert contacts.status_code == 200, contacts.text
    names = sorted(item["name"] for item in contacts.json()["items"])
    assert names == ["Alice", "Carol"]
    accounts = api.get("/directory/accounts", params={"min_position": result["position"]})
    assert [a["name"] for a in accounts.json()["items"]] == ["Umbrella"]

    again = api.post("/imports", json={"rows": ROWS}).json()
    assert (again["written"], again["skipped"], again["events"]) == (0, 3, 0)
    assert again["batch_id"] == result["batch_id"]


def test_too_many_rows_a_too_large_body_or_a_bad_kind_are_problems_not_imports(
    api: httpx.Client, crm: Crm
) -> None:
    position = crm.position()
    row = {"kind": "account", "external_id": "x", "name": "X"}

    many = api.post("/imports", json={"rows": [row] * (MAX_ROWS + 1)})
    huge = api.post("/imports", json={"rows": [{**row, "name": "x" * 2_000_000}]})
    kind = api.post("/imports", json={"rows": [row], "kind": "planet"})
    empty = api.post("/imports", json={"rows": []})

    assert many.status_code in (413, 422)
    assert huge.status_code == 413
    assert kind.status_code == 422
    assert empty.status_code == 422
    for response in (many, huge, kind, empty):
        assert response.headers["content-type"] == "application/problem+json"
    assert crm.position() == position


def test_an_integer_beyond_64_bits_refuses_its_row_not_the_request(
    api: httpx.Client, crm: Crm
) -> None:
    """Found by the fuzz run: the batch id's encoding of the rows refused such numbers."""
    before = crm.position()
    row = {"kind": "account", "external_id": "A-big", "name": "Big", "country": 10**30}
    reply = api.post("/imports", json={"rows": [row]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["written"], body["refused"]) == (0, 1)
    assert body["errors"][0]["index"] == 0
    assert crm.position() == before


def test_only_users_who_may_write_import(
    crm: Crm, owner: Person, server: str, api: httpx.Client
) -> None:
    auditor = invite(crm, "audit@example.com", Role.AUDITOR, by=owner.user.authority)
    position = crm.position()
    body = {"rows": ROWS[:1]}

    anonymous = httpx.post(f"{server}/imports", json=body)
    read_only = httpx.post(
        f"{server}/imports", json=body, headers={"Authorization": f"Bearer {auditor.token}"}
    )

    assert (anonymous.status_code, read_only.status_code) == (401, 403)
    assert written_since(crm, position) == []


# The command line


def test_crm_import_reports_bad_rows_writes_good_ones_and_a_rerun_writes_nothing(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    seed(site)
    path = tmp_path / "contacts.csv"
    path.write_text(
        "external_id,first_name,emails,owner\n"
        "1,Ann,ann@example.com,owner@example.com\n"
        "2,,nobody@example.com,owner@example.com\n"
        "3,Ben,ben@example.com,\n"
    )

    first = site.crm("import", str(path), "--kind", "contact", "--errors", "bad.json")
    again = site.crm("import", str(path), "--kind", "contact", "--owner", "owner@example.com")

    assert first.returncode == 1, first
    assert "line 3: first_name" in first.stderr
    assert "line 4: owner" in first.stderr
    assert "1 rows written" in first.stdout
    refused = json.loads((site.cwd / "bad.json").read_text())
    assert [r["line"] for r in refused] == [3, 4]
    batch = first.stdout.split()[1]
    assert again.returncode == 1
    assert f"batch {batch}" in again.stdout  # the same file: the same import batch
    assert "1 rows written" in again.stdout
    assert "1 skipped as already imported" in again.stdout
    build_read_models_here(site)
    rows = site.crm("sql", "SELECT name FROM directory_contacts ORDER BY name", "--format", "csv")
    assert rows.returncode == 0, rows
    assert rows.stdout.split() == ["name", "Ann", "Ben"]


def test_crm_import_of_a_missing_file_fails_in_one_line_with_status_2(
    site: Site,  # noqa: F811
) -> None:
    result = site.crm("import", "nowhere.jsonl")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot read nowhere.jsonl: No such file or directory"
    ]


@pytest.mark.parametrize("content", ["not,a\n\xff\xfe", "{]"], ids=["binary", "json"])
def test_crm_import_of_unreadable_content_fails_or_refuses_rows(
    site: Site,  # noqa: F811
    tmp_path: Path,
    content: str,
) -> None:
    seed(site)
    path = tmp_path / ("x.csv" if content.startswith("not") else "x.jsonl")
    path.write_bytes(content.encode("latin-1"))

    result = site.crm("import", str(path))

    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        ('4,Dan,"dan@example.com\n5,Eve,eve@example.com\n', 5),  # a quote never closed
        ('4,"Dan"x,dan@example.com\n', 5),  # text after a closing quote
        ("4,D\xe1n,dan@example.com\n".encode("latin-1"), None),  # not UTF-8
    ],
    ids=["open-quote", "text-after-quote", "not-utf8"],
)
def test_crm_import_refuses_a_file_that_is_not_csv_anywhere_before_writing_anything(
    site: Site,  # noqa: F811
    tmp_path: Path,
    tail: str | bytes,
    line: int | None,
) -> None:
    """A file good at its start and broken near its end writes nothing at all: its first
    rows would otherwise be in before the break is found (and an open quote would
    swallow every later row without a word)."""
    seed(site)
    with site.store() as crm:
        position = crm.position()
    good = "".join(f"{n},Name{n},n{n}@example.com\n" for n in range(1, 4))
    path = tmp_path / "contacts.csv"
    head = f"external_id,first_name,emails\n{good}"
    path.write_bytes(head.encode() + (tail.encode() if isinstance(tail, str) else tail))

    result = site.crm("import", str(path), "--kind", "contact", "--owner", "owner@example.com")

    assert result.returncode == 2, result
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: {path} is not ")
    if line is not None:
        assert f"line {line}" in message
    with site.store() as crm:
        assert written_since(crm, position) == []
