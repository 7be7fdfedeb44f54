"""The directory built in bulk (``projections/bulk_directory.py``) equals the directory
built by its handlers on hand-written histories that the commands never write (tags
repeated in a list, names with outer whitespace, control characters in JSON lists,
websites of every shape), and the SQL that stands in for Python's ``domain_of``,
``str.strip``, ``str.lower`` and ``orjson.dumps`` gives what they give."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid5

import duckdb
import orjson
import pytest
from eventsourcing.persistence import ApplicationRecorder
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import bulk_directory
from projections.bulk import add_macros, build, stage
from projections.directory import Directory, domain_of, full_name
from projections.runner import Runner
from projections.store import ReadStore
from tests.projections.compare import content, differences, owners

# -- a store of hand-written events --------------------------------------------------------

NAMESPACE = UUID("0b5c1d8e-1f2a-4c3b-9d4e-5f6a7b8c9d0e")
ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # as the transcoder
TOPICS = {
    "Account": "domain.account",
    "Hierarchy": "domain.account",
    "Contact": "domain.contact",
    "Deal": "domain.deal",
}


def uid(name: str) -> UUID:
    return uuid5(NAMESPACE, name)


def wrapped(kind: str, data: str) -> dict[str, str]:
    return {"_type_": kind, "_data_": data}


def ref(name: str | None) -> dict[str, str] | None:
    """The stored form of the id named ``name`` (None: no id)."""
    return None if name is None else wrapped("uuid_hex", uid(name).hex)


def money(amount: str) -> dict[str, str]:
    return wrapped("decimal_str", amount)


def stage_of(value: str) -> dict[str, str]:
    return wrapped("enum:LifecycleStage", value)


@dataclass(frozen=True)
class Notification:
    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


@dataclass
class Log:
    """Just enough of an application recorder for ``stage`` and the ``Runner``."""

    notifications: list[Notification] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    def add(self, aggregate: str, event: str, /, **fields: Any) -> None:
        version = self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        position = len(self.notifications) + 1
        state = {
            "timestamp": wrapped("datetime_iso", f"2026-01-02T03:04:{position:02d}.000123+00:00"),
            **fields,
            "_meta": {"actor": uid("actor").hex, "request_id": None, "source": "test"},
        }
        self.notifications.append(
            Notification(
                position,
                uid(aggregate),
                version,
                f"{TOPICS[event.split('.')[0]]}:{event}",
                ENCODER.encode(state).encode(),
            )
        )

    def max_notification_id(self) -> int | None:
        return len(self.notifications) or None

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        first = (start or 1) if inclusive_of_start else (start or 0) + 1
        last = len(self.notifications) if stop is None else stop
        return self.notifications[first - 1 : last][:limit]

    @property
    def recorder(self) -> ApplicationRecorder:
        return cast("ApplicationRecorder", self)


def account(log: Log, name: str, parent: str | None = None, website: str | None = None) -> None:
    log.add(
        name,
        "Account.Registered",
        name=name,
        website=website,
        industry=None,
        country="DE",
        address=None,
        owner_id=ref("ann"),
        parent_id=ref(parent),
    )


def contact(log: Log, name: str, tags: list[str], account: str | None = None, **more: Any) -> None:
    fields: dict[str, Any] = {
        "first_name": name,
        "last_name": "Doe",
        "emails": [f"{name.lower()}@example.com"],
        "phones": [],
        "job_title": None,
        "account_id": ref(account),
        "owner_id": ref("ann"),
        "tags": tags,
        "lifecycle_stage": stage_of("lead"),
    }
    log.add(name, "Contact.Created", **{**fields, **more})


def hierarchy(log: Log) -> None:
    account(log, "Acme", website="https://www.Acme.com/about")
    account(log, "Acme DE", parent="Acme", website="acme.de")
    account(log, "Globex", website="http://[::1]:8080/")
    log.add("Acme DE", "Account.ParentChanged", parent_id=None, previous=ref("Acme"))
    log.add("hierarchy", "Hierarchy.ParentSet", account_id=ref("Acme DE"), parent_id=None)
    log.add("Acme DE", "Account.ParentChanged", parent_id=ref("Globex"), previous=None)
    for website in ("WWW.İSTANBUL.example", "ΟΔΟΣ", "https://[::1", None, "a℀b.com"):
        log.add(
            "Globex",
            "Account.DetailsChanged",
            name=" Globex ",
            website=website,
            industry="Retail",
            country=None,
            address="Main St\t1",
        )
    log.add("Acme", "Account.OwnerChanged", owner_id=ref("ben"), previous=ref("ann"))
    log.add("Acme", "Account.Archived")
    log.add("Globex", "Account.Archived")
    log.add("Globex", "Account.Restored")


def tags(log: Log) -> None:
    contact(log, "Kim", ["vip", "a", "vip"])
    contact(log, "Lee", ["\x0b\x1f", 'q"\\u001F', "é\u2028"])  # never retagged
    contact(log, "Max", [])
    for name, tag in [
        ("Kim", "vip"),  # present: nothing changes
        ("Kim", "b"),
        ("Kim", "a"),
        ("Max", "x"),
        ("Max", "y"),
    ]:
        log.add(name, "Contact.Tagged", tag=tag)
    log.add("Kim", "Contact.Untagged", tag="vip")  # both copies
    log.add("Max", "Contact.Untagged", tag="x")
    log.add("Max", "Contact.Untagged", tag="y")
    log.add("Kim", "Contact.Tagged", tag="vip")
    log.add("Kim", "Contact.Tagged", tag="\x1b")


def contacts(log: Log) -> None:
    account(log, "Acme")
    contact(log, "Ann", ["x"], account="Acme", first_name=" Ann\u3000", last_name="")
    log.add(
        "Ann",
        "Contact.DetailsChanged",
        first_name="Ann",
        last_name=" Smith\x85",
        phones=["+49 \x7f", "\x01"],
        job_title="CEO",
    )
    log.add("Ann", "Contact.EmailsChanged", emails=["a\x1c@x.io", "b@x.io"], previous=[])
    log.add("Ann", "Contact.AccountChanged", account_id=None, previous=ref("Acme"))
    log.add("Ann", "Contact.OwnerChanged", owner_id=ref("ben"), previous=ref("ann"))
    log.add(
        "Ann",
        "Contact.LifecycleStageChanged",
        stage=stage_of("customer"),
        previous=stage_of("lead"),
    )
    log.add("Ann", "Contact.AccountChanged", account_id=ref("Acme"), previous=None)


def deals(log: Log) -> None:
    account(log, "Acme")
    for name, account_name in (("D1", "Acme"), ("D2", None)):
        log.add(
            name,
            "Deal.Opened",
            title=name,
            account_id=ref(account_name),
            contact_ids=[],
            amount=money("1250.50"),
            currency="EUR",
            pipeline_id=ref("pipeline"),
            stage_id=ref("lead"),
            owner_id=ref("ann"),
            expected_close_date=None,
        )
    log.add("D1", "Deal.StageChanged", stage_id=ref("won"), previous=ref("lead"))
    log.add(
        "D1",
        "Deal.AmountChanged",
        amount=money("99999.9999"),
        currency="USD",
        previous_amount=money("1250.50"),
        previous_currency="EUR",
    )
    log.add("D1", "Deal.Won", reason="price")
    log.add("D2", "Deal.Lost", reason="")
    log.add("D2", "Deal.Reopened", stage_id=ref("lead"))
    log.add("D1", "Deal.Retitled", title="x", previous="D1")


HISTORIES: dict[str, Callable[[Log], None]] = {
    "hierarchy": hierarchy,
    "tags": tags,
    "contacts": contacts,
    "deals": deals,
}


def handlers_built(log: Log, batch_size: int = 1000) -> dict[str, Any]:
    store = ReadStore(None, [Directory()])
    try:
        Runner(log.recorder, [store], batch_size=batch_size).catch_up()
        return content([store])
    finally:
        store.close()


def bulk_built(log: Log, upto: int | None = None, batch_size: int = 3) -> dict[str, Any]:
    """Built in bulk up to ``upto``, then by the handlers up to the head."""
    store = ReadStore(None, [Directory()])
    try:
        build(store, stage(log.recorder, upto))
        Runner(log.recorder, [store], batch_size=batch_size).catch_up()
        return content([store])
    finally:
        store.close()


def assert_same(built: dict[str, Any], by_handlers: dict[str, Any]) -> None:
    problems = differences(built, by_handlers, owners({"directory": Directory}))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("history", sorted(HISTORIES))
def test_a_bulk_build_of_a_hand_written_history_equals_the_handlers_build(history: str) -> None:
    log = Log()
    HISTORIES[history](log)
    by_handlers = handlers_built(log)
    assert_same(bulk_built(log), by_handlers)
    # ... and the handlers carry on from a bulk build at any position
    for upto in range(1, len(log.notifications)):
        assert_same(bulk_built(log, upto), by_handlers)


def bulk_rows(history: Callable[[Log], None], sql: str) -> list[tuple[Any, ...]]:
    log = Log()
    history(log)
    store = ReadStore(None, [Directory()])
    try:
        build(store, stage(log.recorder))
        return store.con.execute(sql).fetchall()
    finally:
        store.close()


def test_the_hand_written_histories_reach_the_cases_they_are_for() -> None:
    assert bulk_rows(tags, "SELECT first_name, tags FROM directory_contacts ORDER BY 1") == [
        ("Kim", '["a","b","vip","\\u001b"]'),
        ("Lee", orjson.dumps(["\x0b\x1f", 'q"\\u001F', "é\u2028"]).decode()),
        ("Max", "[]"),
    ]
    assert bulk_rows(contacts, "SELECT name, phones, emails FROM directory_contacts") == [
        ("Ann  Smith", '["+49 \x7f","\\u0001"]', '["a\\u001c@x.io","b@x.io"]')
    ]
    assert bulk_rows(hierarchy, "SELECT name, domain FROM directory_accounts ORDER BY 1") == [
        (" Globex ", None),
        ("Acme", "acme.com"),
        ("Acme DE", "acme.de"),
    ]
    assert bulk_rows(deals, "SELECT amount, currency, status FROM directory_deals ORDER BY 1") == [
        (Decimal("1250.5"), "EUR", "open"),
        (Decimal("99999.9999"), "USD", "won"),
    ]


# -- the SQL standing in for Python ---------------------------------------------------------


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    add_macros(connection)
    for macro in bulk_directory.MACROS:
        connection.execute(macro)
    yield connection
    connection.close()


def sql_domains(con: duckdb.DuckDBPyConnection, websites: list[str]) -> dict[str, str]:
    query = (
        "WITH websites AS (SELECT DISTINCT unnest(CAST(? AS VARCHAR[])) AS website), "
        f"{bulk_directory.DOMAINS.strip()} SELECT website, domain FROM domains"
    )
    return dict(con.execute(query, [websites]).fetchall())


WEBSITES = [
    "https://www.Acme.com/about",
    "WWW.Acme.co.uk",
    "http://shop.acme.com:8080/x?y=1",
    "https://[::1",
    "http://[::1]:80/",
    "http://[v1.x]/",
    "http://[1.2.3.4]/",  # an IPv4 address between brackets: refused
    "http://[fe80::1%25Eth0]/",
    "http://[fe80::1%]/",
    "http://[::ffff:1.2.3.4]/",
    "http://[1::2:3:4:5:6:7:8]/",
    "http://[::1.2.3.04]/",
    "http://u[::1]@h/",
    "http://[::1]@[zz/",
    "http://]x[::1]/",
    "x@y@Z:1",
    "mailto:x@y",
    "HTTP://X",
    "//X",
    ":x",
    "",
    "www.",
    "http://www./",
    "\x01http://x.com",
    "\twww.Y.com",
    " www.x",
    "a℀b.com",  # NFKC: a/c
    "\uff57\uff57\uff57\uff0e\uff58\uff1a\uff11",  # full-width: www.x:1
    "WWW.İSTANBUL.example",
    "ΟΔΟΣ.GR",
    "http://user@ΟΔΟΣ:80",
    "\u0391Σʰ",
    "\u0391Σʰb",
    "AΣ\u055f",
    "AΣ\u055fb",
    "ΑΣ'",
    "ΣΑ",
]
#: Pieces of websites that reach every step of ``urlsplit``.
PIECES = [
    *("http", "https", "://", "//", ":", "/", "?", "#", "@", "[", "]", "%", ".", "www."),
    *("WWW.", "a", "Z", "0", "v1.x", "::1", "1.2.3.4", "fe80::1", "::", "İ", "Σ", "ΟΔΟΣ"),
    *("ς", "é", "\u0301", "℀", "\uff20", "\uff1a", "\t", "\n", "\r", "\x01", " ", "\u3000", "-"),
    *("ª", "'", "Ⓐ", "ʰ", "\U0001f130", "·"),
]


@pytest.mark.parametrize("website", WEBSITES)
def test_the_sql_domain_is_domain_of(con: duckdb.DuckDBPyConnection, website: str) -> None:
    assert sql_domains(con, [website]).get(website) == domain_of(website)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=10), max_size=30))
def test_the_sql_domain_is_domain_of_any_website(
    con: duckdb.DuckDBPyConnection, pieces: list[list[str]]
) -> None:
    websites = ["".join(p) for p in pieces]
    found = sql_domains(con, websites)
    assert {w: found.get(w) for w in websites} == {w: domain_of(w) for w in websites}


def test_the_sql_lower_is_str_lower_for_a_sigma_next_to_any_character(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """``str.lower`` turns ``Σ`` to ``ς`` at the end of a word: every character Python
    knows, after the sigma (then the end, or a letter) and before it."""
    known = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs")
    ]
    strings = [s for c in known for s in (f"AΣ{c}", f"AΣ{c}b", f"{c}Σ", f"{c}Σb")]
    lowered = con.execute(
        "SELECT list_transform(CAST(? AS VARCHAR[]), lambda s: directory_lower(s))", [strings]
    ).fetchone()
    assert lowered is not None
    wrong = [
        (s, s.lower(), got) for s, got in zip(strings, lowered[0], strict=True) if s.lower() != got
    ]
    assert not wrong, wrong[:10]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(), max_size=4), min_size=1, max_size=10))
def test_the_json_text_of_a_list_is_orjsons(
    con: duckdb.DuckDBPyConnection, lists: list[list[str]]
) -> None:
    lists = [
        [s for s in strings if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)] for strings in lists
    ]
    stored = [ENCODER.encode(strings) for strings in lists]
    (texts,) = con.execute(
        "SELECT list_transform(CAST(? AS VARCHAR[]), "
        "lambda j: directory_json(CAST(json_extract(j, '$') AS VARCHAR)))",
        [stored],
    ).fetchone() or ([],)
    assert texts == [orjson.dumps(strings).decode() for strings in lists]


WHITESPACE = st.sampled_from(bulk_directory.PYTHON_WHITESPACE)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(WHITESPACE | st.characters()), st.text()), min_size=1))
def test_the_sql_full_name_is_full_name(
    con: duckdb.DuckDBPyConnection, names: list[tuple[str, str]]
) -> None:
    names = [(a, b) for a, b in names if not any(0xD800 <= ord(c) <= 0xDFFF for c in a + b)]
    (found,) = con.execute(
        "SELECT list_transform(CAST(? AS VARCHAR[][]), lambda n: directory_full_name(n[1], n[2]))",
        [[list(n) for n in names]],
    ).fetchone() or ([],)
    assert found == [full_name(first, last) for first, last in names]


def test_python_whitespace_is_what_str_strip_removes() -> None:
    whitespace = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert whitespace == bulk_directory.PYTHON_WHITESPACE
