"""The directory: accounts and contacts as they stand now, with filters and text
search, and the account hierarchy's roll-ups (children, subtree, and the open
pipeline over the subtree, per currency).

The projector keeps one row per account, contact and deal. The hierarchy is stored
as each account's ``parent_id`` only: subtrees and their roll-ups are computed by
the query, so a re-parented account takes its whole subtree (and its deals) along
without rewriting a single descendant's row.

A removed account, contact or deal loses its row, as if it had never been: it leaves
the lists and the roll-ups (the accounts under a removed account are no longer in the
subtree of the accounts above it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import duckdb
import orjson

from projections import bulk_directory
from projections.events import REMOVED, Recorded
from projections.projector import Projector, on
from projections.scope import Owners, owned_by, owner_values
from projections.tables import Column, Table, rows_of

#: Columns holding a JSON list of strings (kept as Python lists in memory).
LISTS = frozenset({"emails", "phones", "tags"})

#: Deeper than any real hierarchy; stops the recursive queries should a cycle ever
#: reach the read model (the write side serialises moves so that none can).
MAX_DEPTH = 1000

#: The most search terms ``q`` is split into.
MAX_TERMS = 10

Record = dict[str, Any]


def domain_of(website: str | None) -> str | None:
    """The host of a website address, lower-cased, without ``www.``:
    ``https://www.Acme.com/about`` -> ``acme.com``."""
    if not website:
        return None
    try:
        host = urlsplit(website if "://" in website else f"//{website}").hostname
    except ValueError:  # not an address (e.g. an unbalanced "[")
        return None
    if not host:
        return None
    return host.removeprefix("www.") or None


def full_name(first_name: str, last_name: str) -> str:
    return f"{first_name} {last_name}".strip()


class Directory(Projector):
    name = "directory"
    bulk_without_removed = True

    def declare_tables(self) -> list[Table]:
        stamps = [
            Column("created_position", "BIGINT", False),
            Column("updated_position", "BIGINT", False),
            Column("created_at", "TIMESTAMPTZ", False),
            Column("updated_at", "TIMESTAMPTZ", False),
        ]
        self.account_table = Table(
            "directory_accounts",
            [
                Column("id", "UUID", False),
                Column("name", "VARCHAR", False),
                Column("website", "VARCHAR"),
                Column("domain", "VARCHAR"),
                Column("industry", "VARCHAR"),
                Column("country", "VARCHAR"),
                Column("address", "VARCHAR"),
                Column("owner_id", "UUID", False),
                Column("parent_id", "UUID"),
                Column("archived", "BOOLEAN", False),
                *stamps,
            ],
            key=["id"],
        )
        self.contact_table = Table(
            "directory_contacts",
            [
                Column("id", "UUID", False),
                Column("name", "VARCHAR", False),
                Column("first_name", "VARCHAR", False),
                Column("last_name", "VARCHAR", False),
                Column("emails", "JSON", False),
                Column("phones", "JSON", False),
                Column("job_title", "VARCHAR"),
                Column("account_id", "UUID"),
                Column("owner_id", "UUID", False),
                Column("tags", "JSON", False),
                Column("lifecycle_stage", "VARCHAR", False),
                *stamps,
            ],
            key=["id"],
        )
        # Every deal, open or closed: a reopened deal counts again with its amount.
        self.deal_table = Table(
            "directory_deals",
            [
                Column("id", "UUID", False),
                Column("account_id", "UUID"),
                Column("amount", "DECIMAL(38, 4)", False),
                Column("currency", "VARCHAR", False),
                Column("status", "VARCHAR", False),
                Column("updated_position", "BIGINT", False),
                Column("updated_at", "TIMESTAMPTZ", False),
            ],
            key=["id"],
        )
        return [self.account_table, self.contact_table, self.deal_table]

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.accounts = _load(con, self.account_table)
        self.contacts = _load(con, self.contact_table)
        self.deals = _load(con, self.deal_table)

    def build_in_bulk(self, con: duckdb.DuckDBPyConnection) -> bool:
        bulk_directory.build(con)
        return True

    # Accounts

    @on("Account.Registered")
    def account_registered(self, event: Recorded) -> None:
        data = event.data
        account = {
            "id": event.aggregate_id,
            "owner_id": data["owner_id"],
            "parent_id": data["parent_id"],
            "archived": False,
            "created_position": event.position,
            "created_at": event.recorded_at,
        }
        account.update(_account_details(data))
        self._save(self.account_table, self.accounts, account, event)

    @on("Account.DetailsChanged")
    def account_details_changed(self, event: Recorded) -> None:
        self._change(self.account_table, self.accounts, event, _account_details(event.data))

    @on("Account.OwnerChanged")
    def account_owner_changed(self, event: Recorded) -> None:
        self._change(self.account_table, self.accounts, event, {"owner_id": event.data["owner_id"]})

    @on("Account.ParentChanged")
    def account_parent_changed(self, event: Recorded) -> None:
        self._change(
            self.account_table, self.accounts, event, {"parent_id": event.data["parent_id"]}
        )

    @on("Account.Archived", "Account.Restored")
    def account_archived_or_restored(self, event: Recorded) -> None:
        archived = event.name == "Account.Archived"
        self._change(self.account_table, self.accounts, event, {"archived": archived})

    # Contacts

    @on("Contact.Created")
    def contact_created(self, event: Recorded) -> None:
        data = event.data
        contact = {
            "id": event.aggregate_id,
            "name": full_name(data["first_name"], data["last_name"]),
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "emails": list(data["emails"]),
            "phones": list(data["phones"]),
            "job_title": data["job_title"],
            "account_id": data["account_id"],
            "owner_id": data["owner_id"],
            "tags": list(data["tags"]),
            "lifecycle_stage": data["lifecycle_stage"],
            "created_position": event.position,
            "created_at": event.recorded_at,
        }
        self._save(self.contact_table, self.contacts, contact, event)

    @on("Contact.DetailsChanged")
    def contact_details_changed(self, event: Recorded) -> None:
        data = event.data
        changes = {
            "name": full_name(data["first_name"], data["last_name"]),
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "phones": list(data["phones"]),
            "job_title": data["job_title"],
        }
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.EmailsChanged")
    def contact_emails_changed(self, event: Recorded) -> None:
        changes = {"emails": list(event.data["emails"])}
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.AccountChanged")
    def contact_account_changed(self, event: Recorded) -> None:
        changes = {"account_id": event.data["account_id"]}
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.OwnerChanged")
    def contact_owner_changed(self, event: Recorded) -> None:
        changes = {"owner_id": event.data["owner_id"]}
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.Tagged")
    def contact_tagged(self, event: Recorded) -> None:
        tag = event.data["tag"]
        tags = self.contacts[event.aggregate_id]["tags"]
        changes = {"tags": tags if tag in tags else [*tags, tag]}
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.Untagged")
    def contact_untagged(self, event: Recorded) -> None:
        tag = event.data["tag"]
        tags = self.contacts[event.aggregate_id]["tags"]
        changes = {"tags": [t for t in tags if t != tag]}
        self._change(self.contact_table, self.contacts, event, changes)

    @on("Contact.LifecycleStageChanged")
    def contact_lifecycle_stage_changed(self, event: Recorded) -> None:
        changes = {"lifecycle_stage": event.data["stage"]}
        self._change(self.contact_table, self.contacts, event, changes)

    # Deals: only what the pipeline roll-up needs

    @on("Deal.Opened")
    def deal_opened(self, event: Recorded) -> None:
        data = event.data
        deal = {
            "id": event.aggregate_id,
            "account_id": data["account_id"],
            "amount": data["amount"],
            "currency": data["currency"],
            "status": "open",
        }
        self._save(self.deal_table, self.deals, deal, event)

    @on("Deal.AmountChanged")
    def deal_amount_changed(self, event: Recorded) -> None:
        changes = {"amount": event.data["amount"], "currency": event.data["currency"]}
        self._change(self.deal_table, self.deals, event, changes)

    @on("Deal.Won", "Deal.Lost", "Deal.Reopened")
    def deal_closed_or_reopened(self, event: Recorded) -> None:
        status = {"Deal.Won": "won", "Deal.Lost": "lost", "Deal.Reopened": "open"}[event.name]
        self._change(self.deal_table, self.deals, event, {"status": status})

    @on(*REMOVED)
    def record_removed(self, event: Recorded) -> None:
        table, records = {
            "account": (self.account_table, self.accounts),
            "contact": (self.contact_table, self.contacts),
            "deal": (self.deal_table, self.deals),
        }[event.kind]
        if records.pop(event.aggregate_id, None) is not None:
            table.delete(event.aggregate_id)

    # Rows

    def _change(
        self, table: Table, records: dict[str, Record], event: Recorded, changes: Record
    ) -> None:
        """Apply ``changes`` to a record created by an earlier event of the same
        aggregate (a missing one is a broken log: the KeyError stops the runner)."""
        record = {**records[event.aggregate_id], **changes}
        self._save(table, records, record, event)

    @staticmethod
    def _save(table: Table, records: dict[str, Record], record: Record, event: Recorded) -> None:
        record["updated_position"] = event.position
        record["updated_at"] = event.recorded_at
        records[record["id"]] = record
        table.upsert(
            record["id"],
            tuple(
                orjson.dumps(record[c.name]).decode() if c.name in LISTS else record[c.name]
                for c in table.columns
            ),
        )


def _account_details(data: dict[str, Any]) -> Record:
    return {
        "name": data["name"],
        "website": data["website"],
        "domain": domain_of(data["website"]),
        "industry": data["industry"],
        "country": data["country"],
        "address": data["address"],
    }


def _load(con: duckdb.DuckDBPyConnection, table: Table) -> dict[str, Record]:
    """A table's rows as the handlers keep them: plain values, as they were written."""
    selects = ", ".join(
        f'"{c.name}"'
        if c.sql_type in ("VARCHAR", "BIGINT", "BOOLEAN")
        else f'CAST("{c.name}" AS VARCHAR) AS "{c.name}"'
        for c in table.columns
    )
    records: dict[str, Record] = {}
    for record in rows_of(con, f"SELECT {selects} FROM {table.name}"):
        for name in LISTS & record.keys():
            record[name] = orjson.loads(record[name])
        records[record["id"]] = record
    return records


# Queries

#: Columns returned as canonical UUID strings.
UUIDS = ("id", "owner_id", "parent_id", "account_id")

#: The most children and descendants an account's detail lists (the roll-ups and
#: counts always cover all of them; ``parent=`` pages through every child).
MAX_LISTED = 1000

ACCOUNTS = (
    "SELECT a.*, (SELECT count(*) FROM directory_accounts k WHERE k.parent_id = a.id) "
    "AS child_count FROM directory_accounts a"
)

CONTACTS = (
    "SELECT c.*, a.name AS company, a.country AS account_country FROM directory_contacts c "
    "LEFT JOIN directory_accounts a ON a.id = c.account_id"
)

SUBTREE = f"""
WITH RECURSIVE tree(id, depth) AS (
    SELECT id, 0 FROM directory_accounts WHERE id = CAST(? AS UUID)
    UNION ALL
    SELECT a.id, tree.depth + 1
    FROM directory_accounts a JOIN tree ON a.parent_id = tree.id
    WHERE tree.depth < {MAX_DEPTH}
),
subtree AS (SELECT id, min(depth) AS depth FROM tree GROUP BY id)
"""


def like_pattern(term: str) -> str:
    """``%term%`` with the user's ``\\``, ``%`` and ``_`` taken literally (``ESCAPE '\\'``)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_terms(q: str | None) -> list[str]:
    """The words of a search: each must match one of the searched fields."""
    return (q or "").split()[:MAX_TERMS]


def _filters(conditions: list[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
    where = [clause for clause, value in conditions if value is not None]
    return where, [value for _, value in conditions if value is not None]


def _page(
    con: duckdb.DuckDBPyConnection,
    source: str,
    where: list[str],
    params: list[Any],
    after: tuple[str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Rows of ``source`` by lower-cased name, then id (keyset pagination: ``after``
    is the (``sort_name``, ``id``) of the last row of the previous page)."""
    if after is not None:
        where = [*where, "(lower(name) > ? OR (lower(name) = ? AND id > CAST(? AS UUID)))"]
        params = [*params, after[0], after[0], after[1]]
    rows = rows_of(
        con,
        f"SELECT *, lower(name) AS sort_name FROM ({source})"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY sort_name, id LIMIT ?",
        [*params, limit],
    )
    for row in rows:
        _plain(row)
    return rows


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    for name in UUIDS:
        if row.get(name) is not None:
            row[name] = str(row[name])
    for name in LISTS & row.keys():
        row[name] = orjson.loads(row[name])
    return row


def accounts(
    con: duckdb.DuckDBPyConnection,
    *,
    owner: str | None = None,
    owners: Owners = None,
    country: str | None = None,
    industry: str | None = None,
    archived: bool | None = None,
    parent: str | None = None,
    q: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Accounts by name (case-insensitive), then id. ``industry`` matches ignoring
    case; ``q``: each word occurs in the name, domain or website, ignoring case."""
    where, params = _filters(
        [
            ("owner_id = CAST(? AS UUID)", owner),
            (owned_by("owner_id"), owner_values(owners)),
            ("country = ?", country),
            ("lower(industry) = lower(?)", industry),
            ("archived = ?", archived),
            ("parent_id = CAST(? AS UUID)", parent),
        ]
    )
    for term in search_terms(q):
        where.append(
            "(name ILIKE ? ESCAPE '\\' OR domain ILIKE ? ESCAPE '\\' "
            "OR website ILIKE ? ESCAPE '\\')"
        )
        params.extend([like_pattern(term)] * 3)
    return _page(con, ACCOUNTS, where, params, after, limit)


def contacts(
    con: duckdb.DuckDBPyConnection,
    *,
    owner: str | None = None,
    owners: Owners = None,
    lifecycle_stage: str | None = None,
    tag: str | None = None,
    account: str | None = None,
    country: str | None = None,
    q: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Contacts by name (case-insensitive), then id. ``country`` is their account's;
    ``q``: each word occurs in the name, an e-mail address or the company (the
    account's name), ignoring case."""
    where, params = _filters(
        [
            ("owner_id = CAST(? AS UUID)", owner),
            (owned_by("owner_id"), owner_values(owners)),
            ("lifecycle_stage = ?", lifecycle_stage),
            ("list_contains(CAST(tags AS VARCHAR[]), ?)", tag),
            ("account_id = CAST(? AS UUID)", account),
            ("account_country = ?", country),
        ]
    )
    for term in search_terms(q):
        where.append(
            "(name ILIKE ? ESCAPE '\\' OR company ILIKE ? ESCAPE '\\' OR EXISTS ("
            "SELECT 1 FROM unnest(CAST(emails AS VARCHAR[])) AS e(email) "
            "WHERE e.email ILIKE ? ESCAPE '\\'))"
        )
        params.extend([like_pattern(term)] * 3)
    return _page(con, CONTACTS, where, params, after, limit)


def account_detail(
    con: duckdb.DuckDBPyConnection,
    account_id: str,
    *,
    owners: Owners = None,
    with_pipeline: bool = True,
) -> dict[str, Any] | None:
    """One account with its children, its subtree (each descendant with its depth
    below the account, nearest first), and the open pipeline of the account alone
    and of its whole subtree: open deals counted and summed per currency (amounts in
    different currencies are never added up).

    ``owners`` keeps the children and descendants listed and counted to the accounts
    of those owners (the account itself is returned whoever owns it: the caller
    checks it). The roll-ups sum every deal of the subtree, whoever owns it: without
    ``with_pipeline`` (a reader who may not read every deal) they are ``None``."""
    found = rows_of(con, f"SELECT * FROM ({ACCOUNTS}) WHERE id = CAST(? AS UUID)", [account_id])
    if not found:
        return None
    detail = _plain(found[0])
    detail["children"] = accounts(con, parent=account_id, owners=owners, limit=MAX_LISTED)
    visible, params = _filters([(owned_by("a.owner_id"), owner_values(owners))])
    scoped = "".join(f" AND {clause}" for clause in visible)
    (detail["descendant_count"],) = con.execute(
        SUBTREE + "SELECT count(*) FROM subtree s JOIN directory_accounts a ON a.id = s.id "
        f"WHERE s.depth > 0{scoped}",
        [account_id, *params],
    ).fetchone() or (0,)
    detail["descendants"] = [
        _plain(row)
        for row in rows_of(
            con,
            SUBTREE + "SELECT a.id, a.name, a.parent_id, s.depth, a.archived "
            f"FROM subtree s JOIN directory_accounts a ON a.id = s.id WHERE s.depth > 0{scoped} "
            "ORDER BY s.depth, lower(a.name), a.id LIMIT ?",
            [account_id, *params, MAX_LISTED],
        )
    ]
    detail["open_pipeline"] = detail["subtree_open_pipeline"] = None
    if with_pipeline:
        detail["open_pipeline"] = _pipeline(con, "SELECT CAST(? AS UUID)", [account_id])
        detail["subtree_open_pipeline"] = _pipeline(
            con, SUBTREE + "SELECT id FROM subtree", [account_id]
        )
    return detail


def _pipeline(
    con: duckdb.DuckDBPyConnection, accounts_sql: str, params: list[Any]
) -> dict[str, Any]:
    by_currency = rows_of(
        con,
        "SELECT currency, count(*) AS deals, sum(amount) AS amount FROM directory_deals "
        f"WHERE status = 'open' AND account_id IN ({accounts_sql}) "
        "GROUP BY currency ORDER BY currency",
        params,
    )
    for row in by_currency:
        row["amount"] = money(row["amount"])
    return {"deals": sum(row["deals"] for row in by_currency), "by_currency": by_currency}


def money(amount: Decimal) -> Decimal:
    """An exact sum shown with two decimals, or with up to four where it has them."""
    cents = amount.quantize(Decimal("0.01"))
    return cents if cents == amount else amount.normalize()
