"""The directory read model, driven by real commands on both stores: accounts and
contacts with every event they have, filters and text search, and the hierarchy's
roll-ups (children, subtree, open pipeline per currency), including re-parenting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest

from commands.accounts import (
    ArchiveAccount,
    MoveAccount,
    ReassignAccount,
    RegisterAccount,
    RestoreAccount,
    UpdateAccount,
)
from commands.app import Crm
from commands.contacts import (
    ChangeLifecycleStage,
    CreateContact,
    LinkContactToAccount,
    ReassignContact,
    TagContact,
    UntagContact,
    UpdateContact,
)
from commands.context import Payload, Receipt
from commands.deals import LoseDeal, OpenDeal, ReopenDeal, UpdateDeal, WinDeal
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from domain.contact import LifecycleStage
from domain.roles import Role
from projections import directory
from projections.directory import Directory, domain_of, like_pattern
from projections.host import ReadModels
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person, invite
from tests.projections.compare import assert_same_as_rebuilt

Read = Callable[[], duckdb.DuckDBPyConnection]


@pytest.fixture
def read(crm: Crm) -> Iterator[Read]:
    """Catch the directory up with the store and hand out a read connection."""
    reads = ReadModels(crm.recorder, None, {Directory.name: Directory})
    connections: list[duckdb.DuckDBPyConnection] = []

    def connection() -> duckdb.DuckDBPyConnection:
        reads.runner.catch_up()
        con = reads.store(Directory.name).reader()
        connections.append(con)
        return con

    yield connection
    for con in connections:
        con.close()
    reads.close()


class Commands:
    def __init__(self, crm: Crm, person: Person) -> None:
        self.crm, self.person = crm, person

    def __call__(self, command: Payload) -> Receipt:
        return execute(self.crm, command, self.person.ctx)

    def account(self, name: str, **fields: Any) -> str:
        return str(self(RegisterAccount(name=name, **fields)).id)

    def contact(self, first_name: str, **fields: Any) -> str:
        return str(self(CreateContact(first_name=first_name, **fields)).id)

    def deal(self, account: str | None, amount: str, currency: str) -> str:
        receipt = self(
            OpenDeal(
                title=f"{amount} {currency}",
                amount=Decimal(amount),
                currency=currency,
                pipeline_id=self.pipeline,
                account_id=UUID(account) if account else None,
            )
        )
        return str(receipt.id)

    @property
    def pipeline(self) -> UUID:
        if not hasattr(self, "_pipeline"):
            stages = [StageSpec(name="Lead", probability=10), StageSpec(name="Won", probability=90)]
            self._pipeline = self(CreatePipeline(name="Sales", stages=stages)).id
        return self._pipeline


@pytest.fixture
def do(crm: Crm, owner: Person) -> Commands:
    return Commands(crm, owner)


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


def the(rows: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = rows
    return row


def pipeline(detail: dict[str, Any], key: str = "subtree_open_pipeline") -> dict[str, Any]:
    """A roll-up as {currency: (deals, amount)}, with the total count."""
    rollup = detail[key]
    return {
        "deals": rollup["deals"],
        **{r["currency"]: (r["deals"], r["amount"]) for r in rollup["by_currency"]},
    }


# Accounts


def test_a_registered_account_is_listed_with_its_details_and_domain(
    do: Commands, owner: Person, read: Read
) -> None:
    receipt = do(
        RegisterAccount(
            name="Acme",
            website="https://www.Acme.com/about",
            industry="Manufacturing",
            country="DE",
            address="Hauptstr. 1, Berlin",
        )
    )

    row = the(directory.accounts(read()))

    assert row["id"] == str(receipt.id)
    assert row["name"] == "Acme"
    assert row["website"] == "https://www.Acme.com/about"
    assert row["domain"] == "acme.com"
    assert (row["industry"], row["country"], row["address"]) == (
        "Manufacturing",
        "DE",
        "Hauptstr. 1, Berlin",
    )
    assert row["owner_id"] == str(owner.user.id)
    assert row["parent_id"] is None
    assert row["archived"] is False
    assert row["child_count"] == 0
    assert row["created_position"] == row["updated_position"] == receipt.position


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("acme.com", "acme.com"),
        ("WWW.Acme.co.uk", "acme.co.uk"),
        ("http://shop.acme.com:8080/x?y=1", "shop.acme.com"),
        ("https://[::1", None),
        (None, None),
    ],
)
def test_the_domain_is_the_websites_host_without_www(website: str | None, domain: str) -> None:
    assert domain_of(website) == domain


def test_account_changes_are_reflected(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    account = UUID(do.account("Acme", website="acme.com", country="DE"))
    registered = the(directory.accounts(read()))

    do(UpdateAccount(account_id=account, name="Acme Corp", website="https://acme.io"))
    do(ReassignAccount(account_id=account, owner_id=rep.user.id))
    archived = do(ArchiveAccount(account_id=account))

    row = the(directory.accounts(read()))
    assert (row["name"], row["website"], row["domain"], row["country"]) == (
        "Acme Corp",
        "https://acme.io",
        "acme.io",
        "DE",
    )
    assert row["owner_id"] == str(rep.user.id)
    assert row["archived"] is True
    assert row["created_position"] == registered["created_position"]
    assert row["updated_position"] == archived.position
    assert row["updated_at"] > registered["updated_at"]

    do(RestoreAccount(account_id=account))

    assert the(directory.accounts(read()))["archived"] is False


def test_accounts_are_filtered(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    acme = do.account("Acme", country="DE", industry="Retail")
    do.account("Globex", country="US", industry="retail", owner_id=rep.user.id)
    do.account("Initech", country="US", industry="Software", parent_id=UUID(acme))
    old = do.account("Umbrella", country="DE")
    do(ArchiveAccount(account_id=UUID(old)))
    con = read()

    assert names(directory.accounts(con)) == ["Acme", "Globex", "Initech", "Umbrella"]
    assert names(directory.accounts(con, owner=str(rep.user.id))) == ["Globex"]
    assert names(directory.accounts(con, owner=str(owner.user.id))) == [
        "Acme",
        "Initech",
        "Umbrella",
    ]
    assert names(directory.accounts(con, country="US")) == ["Globex", "Initech"]
    assert names(directory.accounts(con, industry="RETAIL")) == ["Acme", "Globex"]
    assert names(directory.accounts(con, archived=True)) == ["Umbrella"]
    assert names(directory.accounts(con, archived=False)) == ["Acme", "Globex", "Initech"]
    assert names(directory.accounts(con, parent=acme)) == ["Initech"]
    assert names(directory.accounts(con, country="DE", archived=False)) == ["Acme"]
    assert directory.accounts(con, country="FR") == []


def test_account_search_covers_name_domain_and_website_ignoring_case(
    do: Commands, read: Read
) -> None:
    do.account("Acme Rockets", website="https://www.acme-rockets.com")
    do.account("Globex", website="globex.example")
    do.account("Initech", website="https://initech.example/acme")
    con = read()

    assert names(directory.accounts(con, q="ROCKET")) == ["Acme Rockets"]
    assert names(directory.accounts(con, q="globex.EXAMPLE")) == ["Globex"]
    # The website's path is searched too, the domain alone would not have it.
    assert names(directory.accounts(con, q="acme")) == ["Acme Rockets", "Initech"]
    assert names(directory.accounts(con, q="acme rockets")) == ["Acme Rockets"]
    assert names(directory.accounts(con, q="acme nowhere")) == []
    assert names(directory.accounts(con, q="  ")) == ["Acme Rockets", "Globex", "Initech"]


def test_percent_underscore_and_backslash_in_a_search_are_literal(do: Commands, read: Read) -> None:
    for name in ["100% Organic", "1000 Organic", "A_B", "AxB", "Back\\slash", "Backslash"]:
        do.account(name)
    con = read()

    assert names(directory.accounts(con, q="100%")) == ["100% Organic"]
    assert names(directory.accounts(con, q="%")) == ["100% Organic"]
    assert names(directory.accounts(con, q="a_b")) == ["A_B"]
    assert names(directory.accounts(con, q="_")) == ["A_B"]
    assert names(directory.accounts(con, q="k\\s")) == ["Back\\slash"]
    assert names(directory.accounts(con, q="'; DROP TABLE directory_accounts; --")) == []
    assert len(directory.accounts(con)) == 6


def test_like_patterns_escape_the_wildcards() -> None:
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_accounts_page_by_name_ignoring_case_then_id(do: Commands, read: Read) -> None:
    ids = sorted(do.account(name) for name in ["same", "Same", "SAME"])
    do.account("alpha")
    do.account("Zulu")
    con = read()

    seen: list[str] = []
    after = None
    while True:
        page = directory.accounts(con, after=after, limit=2)
        seen += [row["id"] for row in page]
        if len(page) < 2:
            break
        after = (page[-1]["sort_name"], page[-1]["id"])

    rows = {row["id"]: row["name"] for row in directory.accounts(con)}
    assert len(seen) == len(set(seen)) == 5
    assert rows[seen[0]] == "alpha"
    assert seen[1:4] == ids  # equal names (ignoring case) in id order
    assert rows[seen[4]] == "Zulu"


# Contacts


def test_a_created_contact_is_listed_with_every_field(
    do: Commands, owner: Person, read: Read
) -> None:
    account = do.account("Acme", country="DE")
    receipt = do(
        CreateContact(
            first_name="Ada",
            last_name="Lovelace",
            emails=["Ada@Example.com", "ada@work.example"],
            phones=["+49 30 1234"],
            job_title="CTO",
            account_id=UUID(account),
            tags=["VIP", "partner"],
            lifecycle_stage=LifecycleStage.PROSPECT,
        )
    )

    row = the(directory.contacts(read()))

    assert row["id"] == str(receipt.id)
    assert (row["name"], row["first_name"], row["last_name"]) == ("Ada Lovelace", "Ada", "Lovelace")
    assert row["emails"] == ["ada@example.com", "ada@work.example"]
    assert row["phones"] == ["+49 30 1234"]
    assert row["job_title"] == "CTO"
    assert (row["account_id"], row["company"], row["account_country"]) == (account, "Acme", "DE")
    assert row["owner_id"] == str(owner.user.id)
    assert row["tags"] == ["vip", "partner"]
    assert row["lifecycle_stage"] == "prospect"
    # The receipt's position is the command's last event (its e-mail index entries come after).
    assert row["created_position"] == row["updated_position"]
    assert directory.accounts(read())[0]["created_position"] < row["created_position"]
    assert row["created_position"] < receipt.position


def test_contact_changes_are_reflected(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    acme = do.account("Acme", country="DE")
    contact = UUID(do.contact("Ada", emails=["ada@old.example"], tags=["vip"]))

    do(UpdateContact(contact_id=contact, last_name="King", phones=["1"], job_title="Countess"))
    do(UpdateContact(contact_id=contact, emails=["ada@new.example", "ada@home.example"]))
    do(LinkContactToAccount(contact_id=contact, account_id=UUID(acme)))
    do(ReassignContact(contact_id=contact, owner_id=rep.user.id))
    do(TagContact(contact_id=contact, tag="Partner"))
    do(UntagContact(contact_id=contact, tag="VIP"))
    last = do(ChangeLifecycleStage(contact_id=contact, stage=LifecycleStage.CUSTOMER))

    row = the(directory.contacts(read()))
    assert (row["name"], row["last_name"], row["phones"], row["job_title"]) == (
        "Ada King",
        "King",
        ["1"],
        "Countess",
    )
    assert row["emails"] == ["ada@new.example", "ada@home.example"]
    assert (row["account_id"], row["company"], row["account_country"]) == (acme, "Acme", "DE")
    assert row["owner_id"] == str(rep.user.id)
    assert row["tags"] == ["partner"]
    assert row["lifecycle_stage"] == "customer"
    assert row["updated_position"] == last.position

    do(LinkContactToAccount(contact_id=contact, account_id=None))

    row = the(directory.contacts(read()))
    assert (row["account_id"], row["company"], row["account_country"]) == (None, None, None)


def test_contacts_are_filtered(crm: Crm, do: Commands, owner: Person, read: Read) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    acme = do.account("Acme", country="DE")
    globex = do.account("Globex", country="US")
    ada = UUID(do.contact("Ada", account_id=UUID(acme), tags=["vip"]))
    do.contact("Bob", account_id=UUID(globex), owner_id=rep.user.id, tags=["vip", "partner"])
    do.contact("Cy", lifecycle_stage=LifecycleStage.CUSTOMER)
    con = read()

    assert names(directory.contacts(con)) == ["Ada", "Bob", "Cy"]
    assert names(directory.contacts(con, owner=str(rep.user.id))) == ["Bob"]
    assert names(directory.contacts(con, lifecycle_stage="customer")) == ["Cy"]
    assert names(directory.contacts(con, lifecycle_stage="lead")) == ["Ada", "Bob"]
    assert names(directory.contacts(con, tag="vip")) == ["Ada", "Bob"]
    assert names(directory.contacts(con, tag="partner")) == ["Bob"]
    assert names(directory.contacts(con, account=acme)) == ["Ada"]
    assert names(directory.contacts(con, country="US")) == ["Bob"]
    assert names(directory.contacts(con, country="DE", tag="vip")) == ["Ada"]

    do(TagContact(contact_id=ada, tag="partner"))
    do(UntagContact(contact_id=ada, tag="vip"))
    con = read()

    assert names(directory.contacts(con, tag="vip")) == ["Bob"]
    assert names(directory.contacts(con, tag="partner")) == ["Ada", "Bob"]


def test_contact_search_covers_name_email_and_company(do: Commands, read: Read) -> None:
    acme = do.account("Acme Rockets")
    ada = UUID(do.contact("Ada", last_name="Lovelace", emails=["ada@analytical.example"]))
    do.contact("Bob", last_name="Builder", emails=["bob@site.example"], account_id=UUID(acme))
    con = read()

    assert names(directory.contacts(con, q="LOVELACE")) == ["Ada Lovelace"]
    assert names(directory.contacts(con, q="ada lovelace")) == ["Ada Lovelace"]
    assert names(directory.contacts(con, q="analytical")) == ["Ada Lovelace"]
    assert names(directory.contacts(con, q="rockets")) == ["Bob Builder"]
    assert names(directory.contacts(con, q="bob acme")) == ["Bob Builder"]
    assert names(directory.contacts(con, q="example")) == ["Ada Lovelace", "Bob Builder"]
    assert names(directory.contacts(con, q="_")) == []

    # A changed e-mail address is found by its new value only; a renamed company too.
    do(UpdateContact(contact_id=ada, emails=["countess_of@lovelace.example"]))
    do(UpdateAccount(account_id=UUID(acme), name="Globex"))
    con = read()

    assert names(directory.contacts(con, q="analytical")) == []
    assert names(directory.contacts(con, q="s_of@")) == ["Ada Lovelace"]
    assert names(directory.contacts(con, q="rockets")) == []
    assert names(directory.contacts(con, q="globex")) == ["Bob Builder"]


# The hierarchy


def test_an_account_detail_has_children_subtree_and_open_pipeline(do: Commands, read: Read) -> None:
    group = do.account("Group")
    europe = do.account("Europe", parent_id=UUID(group))
    germany = do.account("Germany", parent_id=UUID(europe))
    france = do.account("France", parent_id=UUID(europe))
    usa = do.account("USA", parent_id=UUID(group))
    do.account("Elsewhere")
    do.deal(group, "100.00", "EUR")
    do.deal(germany, "1000.50", "EUR")
    do.deal(germany, "200", "USD")
    do.deal(france, "0.25", "EUR")
    do.deal(usa, "300", "USD")
    do.deal(None, "999", "EUR")
    con = read()

    detail = directory.account_detail(con, group)

    assert detail is not None
    assert detail["name"] == "Group"
    assert names(detail["children"]) == ["Europe", "USA"]
    assert detail["child_count"] == 2
    assert detail["descendant_count"] == 4
    assert [(d["name"], d["depth"]) for d in detail["descendants"]] == [
        ("Europe", 1),
        ("USA", 1),
        ("France", 2),
        ("Germany", 2),
    ]
    assert {d["name"]: d["parent_id"] for d in detail["descendants"]}["Germany"] == europe
    assert pipeline(detail, "open_pipeline") == {"deals": 1, "EUR": (1, Decimal("100.00"))}
    assert pipeline(detail) == {
        "deals": 5,
        "EUR": (3, Decimal("1100.75")),
        "USD": (2, Decimal("500.00")),
    }
    europe_detail = directory.account_detail(con, europe)
    assert europe_detail is not None
    assert pipeline(europe_detail) == {
        "deals": 3,
        "EUR": (2, Decimal("1000.75")),
        "USD": (1, Decimal("200.00")),
    }
    leaf = directory.account_detail(con, france)
    assert leaf is not None
    assert (leaf["children"], leaf["descendants"], leaf["descendant_count"]) == ([], [], 0)
    assert directory.account_detail(con, "00000000-0000-4000-8000-000000000000") is None


def test_the_open_pipeline_follows_amount_changes_wins_losses_and_reopens(
    do: Commands, read: Read
) -> None:
    parent = do.account("Parent")
    child = do.account("Child", parent_id=UUID(parent))
    first = UUID(do.deal(child, "100", "EUR"))
    second = UUID(do.deal(child, "50", "EUR"))
    third = UUID(do.deal(parent, "10", "EUR"))

    def subtree() -> dict[str, Any]:
        detail = directory.account_detail(read(), parent)
        assert detail is not None
        return pipeline(detail)

    assert subtree() == {"deals": 3, "EUR": (3, Decimal("160.00"))}

    do(UpdateDeal(deal_id=first, amount=Decimal("120.1234")))
    assert subtree() == {"deals": 3, "EUR": (3, Decimal("180.1234"))}

    # A change of currency moves the deal to the other currency's total.
    do(UpdateDeal(deal_id=second, amount=Decimal("70"), currency="GBP"))
    assert subtree() == {
        "deals": 3,
        "EUR": (2, Decimal("130.1234")),
        "GBP": (1, Decimal("70.00")),
    }

    do(WinDeal(deal_id=first))
    do(LoseDeal(deal_id=second))
    assert subtree() == {"deals": 1, "EUR": (1, Decimal("10.00"))}

    do(ReopenDeal(deal_id=second))
    assert subtree() == {
        "deals": 2,
        "EUR": (1, Decimal("10.00")),
        "GBP": (1, Decimal("70.00")),
    }

    do(LoseDeal(deal_id=third))
    do(LoseDeal(deal_id=second))
    assert subtree() == {"deals": 0}


def test_re_parenting_moves_the_whole_subtree_and_its_pipeline(do: Commands, read: Read) -> None:
    north = do.account("North")
    south = do.account("South")
    branch = do.account("Branch", parent_id=UUID(north))
    leaf = do.account("Leaf", parent_id=UUID(branch))
    do.deal(branch, "10", "EUR")
    do.deal(leaf, "5", "EUR")
    do.deal(leaf, "7", "JPY")
    do.deal(south, "1", "EUR")

    def detail(account: str) -> dict[str, Any]:
        found = directory.account_detail(read(), account)
        assert found is not None
        return found

    assert pipeline(detail(north)) == {
        "deals": 3,
        "EUR": (2, Decimal("15.00")),
        "JPY": (1, Decimal("7.00")),
    }
    assert pipeline(detail(south)) == {"deals": 1, "EUR": (1, Decimal("1.00"))}

    do(MoveAccount(account_id=UUID(branch), parent_id=UUID(south)))

    assert pipeline(detail(north)) == {"deals": 0}
    assert (detail(north)["children"], detail(north)["descendants"]) == ([], [])
    moved = detail(south)
    assert names(moved["children"]) == ["Branch"]
    assert [(d["name"], d["depth"]) for d in moved["descendants"]] == [("Branch", 1), ("Leaf", 2)]
    assert pipeline(moved) == {
        "deals": 4,
        "EUR": (3, Decimal("16.00")),
        "JPY": (1, Decimal("7.00")),
    }
    assert detail(branch)["parent_id"] == south

    # Moved to the top: the branch is a root of its own, with its leaf.
    do(MoveAccount(account_id=UUID(branch), parent_id=None))

    assert pipeline(detail(south)) == {"deals": 1, "EUR": (1, Decimal("1.00"))}
    assert detail(branch)["parent_id"] is None
    assert pipeline(detail(branch)) == {
        "deals": 3,
        "EUR": (2, Decimal("15.00")),
        "JPY": (1, Decimal("7.00")),
    }
    assert names(directory.accounts(read(), parent=south)) == []


def test_archived_accounts_stay_in_the_hierarchy_and_its_roll_up(do: Commands, read: Read) -> None:
    parent = do.account("Parent")
    child = do.account("Child", parent_id=UUID(parent))
    do.deal(child, "10", "EUR")
    do(ArchiveAccount(account_id=UUID(child)))

    detail = directory.account_detail(read(), parent)

    assert detail is not None
    assert [(c["name"], c["archived"]) for c in detail["children"]] == [("Child", True)]
    assert pipeline(detail) == {"deals": 1, "EUR": (1, Decimal("10.00"))}


# Incremental == rebuilt


def test_one_event_batches_with_restarts_equal_a_rebuild(
    crm: Crm, do: Commands, tmp_path: Path
) -> None:
    a = do.account("A", website="a.example")
    b = do.account("B", parent_id=UUID(a))
    c = UUID(do.contact("Cy", emails=["cy@x.example"], tags=["vip"], account_id=UUID(b)))
    deal = UUID(do.deal(b, "12.5", "EUR"))
    do(TagContact(contact_id=c, tag="partner"))
    do(UntagContact(contact_id=c, tag="vip"))
    do(UpdateContact(contact_id=c, emails=["cy@y.example"], first_name="Cyrus"))
    do(UpdateDeal(deal_id=deal, amount=Decimal("13"), currency="USD"))
    do(WinDeal(deal_id=deal))
    do(ReopenDeal(deal_id=deal))
    do(MoveAccount(account_id=UUID(b), parent_id=None))
    do(ArchiveAccount(account_id=UUID(a)))
    factories = {Directory.name: Directory}

    path = tmp_path / "directory.duckdb"
    while True:
        # A fresh store each step: the projector reloads its memory from the tables.
        store = ReadStore(path, [Directory()])
        try:
            if Runner(crm.recorder, [store], batch_size=1).step() == 0:
                assert_same_as_rebuilt(crm.recorder, factories, [store])
                break
        finally:
            store.close()
