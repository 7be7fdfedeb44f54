"""The directory over real HTTP: filters, text search, cursor pagination, account
detail with the hierarchy roll-up, read-your-writes, and bad parameters refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.cursors import encode_cursor


class Client:
    """Commands through the API, remembering the last position for the reads."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.position = 0

    def send(self, method: str, path: str, json: dict[str, Any] | None = None) -> str:
        response = self.api.request(method, path, json=json)
        assert response.status_code in (200, 201), response.text
        receipt = response.json()
        self.position = max(self.position, receipt["position"])
        return str(receipt["id"])

    def post(self, path: str, json: dict[str, Any] | None = None) -> str:
        return self.send("POST", path, json or {})

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params={"min_position": self.position, **params})
        assert response.status_code == 200, response.text
        return response.json()

    def names(self, path: str, **params: Any) -> list[str]:
        return [item["name"] for item in self.get(path, **params)["items"]]

    def pipeline(self) -> str:
        stages = [{"name": "Lead", "probability": 10}]
        return self.post("/pipelines", {"name": "Sales", "stages": stages})


@pytest.fixture
def client(api: httpx.Client) -> Client:
    return Client(api)


def walk(client: Client, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following ``next``."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(100):
        page = client.get(path, limit=limit, **params, **({"after": after} if after else {}))
        assert len(page["items"]) <= limit
        items += page["items"]
        after = page["next"]
        if after is None:
            return items
    raise AssertionError("the pages never ended")


def test_a_read_with_the_position_a_command_returned_sees_the_change(api: httpx.Client) -> None:
    for n in range(3):
        receipt = api.post("/accounts", json={"name": f"Acme {n}"}).json()
        page = api.get(
            "/directory/accounts",
            params={"q": f"acme {n}", "min_position": receipt["position"]},
        )
        assert page.status_code == 200, page.text
        assert [item["id"] for item in page.json()["items"]] == [receipt["id"]]

        renamed = api.patch(f"/accounts/{receipt['id']}", json={"name": f"Renamed {n}"}).json()
        detail = api.get(
            f"/directory/accounts/{receipt['id']}", params={"min_position": renamed["position"]}
        )
        assert detail.json()["name"] == f"Renamed {n}"
        assert detail.json()["updated_position"] == renamed["position"]


def test_accounts_are_filtered_and_searched(client: Client) -> None:
    acme = client.post(
        "/accounts",
        {"name": "Acme", "country": "DE", "industry": "Retail", "website": "https://www.acme.de"},
    )
    client.post("/accounts", {"name": "Acme Subsidiary", "country": "FR", "parent_id": acme})
    client.post("/accounts", {"name": "100% Organic", "industry": "retail"})
    client.post("/accounts", {"name": "1000 Organic"})
    client.post("/accounts", {"name": "Under_score"})
    old = client.post("/accounts", {"name": "Underscore", "country": "DE"})
    client.post(f"/accounts/{old}/archive")
    accounts = "/directory/accounts"

    assert client.names(accounts, country="de") == ["Acme", "Underscore"]
    assert client.names(accounts, industry="RETAIL") == ["100% Organic", "Acme"]
    assert client.names(accounts, parent=acme) == ["Acme Subsidiary"]
    assert client.names(accounts, archived="true") == ["Underscore"]
    assert client.names(accounts, archived="false", country="DE") == ["Acme"]
    assert client.names(accounts, q="ACME.de") == ["Acme"]
    assert client.names(accounts, q="100%") == ["100% Organic"]
    assert client.names(accounts, q="r_s") == ["Under_score"]
    assert client.names(accounts, q="_") == ["Under_score"]
    owner = client.get(f"/directory/accounts/{acme}")["owner_id"]
    assert len(client.names(accounts, owner=owner)) == 6
    assert client.names(accounts, owner="00000000-0000-4000-8000-000000000000") == []


def test_contacts_are_filtered_searched_tagged_and_untagged(client: Client) -> None:
    acme = client.post("/accounts", {"name": "Acme Rockets", "country": "DE"})
    ada = client.post(
        "/contacts",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "emails": ["ada@analytical.example"],
            "account_id": acme,
            "tags": ["VIP"],
        },
    )
    client.post(
        "/contacts",
        {"first_name": "Bob", "emails": ["bob_b@site.example"], "lifecycle_stage": "customer"},
    )
    contacts = "/directory/contacts"

    (row,) = client.get(contacts, q="rockets")["items"]
    assert (row["id"], row["company"], row["account_country"]) == (ada, "Acme Rockets", "DE")
    assert row["tags"] == ["vip"]
    assert client.names(contacts, tag="Vip") == ["Ada Lovelace"]
    assert client.names(contacts, country="de") == ["Ada Lovelace"]
    assert client.names(contacts, account=acme) == ["Ada Lovelace"]
    assert client.names(contacts, lifecycle_stage="customer") == ["Bob"]
    assert client.names(contacts, q="B_B@") == ["Bob"]
    assert client.names(contacts, q="%") == []

    client.post(f"/contacts/{ada}/tags", {"tag": "Partner"})
    client.send("DELETE", f"/contacts/{ada}/tags/vip")
    client.send("PATCH", f"/contacts/{ada}", {"emails": ["countess@lovelace.example"]})

    assert client.names(contacts, tag="vip") == []
    assert client.names(contacts, tag="partner") == ["Ada Lovelace"]
    assert client.names(contacts, q="analytical") == []
    assert client.names(contacts, q="countess@") == ["Ada Lovelace"]


def test_every_page_is_walked_without_a_row_twice_or_missing(client: Client) -> None:
    acme = client.post("/accounts", {"name": "acme"})
    ids = {acme}
    for name in ["Zeta", "Acme", "ACME", "beta", "Beta", "gamma", "Delta"]:
        ids.add(client.post("/accounts", {"name": name}))
    contact_ids = {
        client.post("/contacts", {"first_name": name, "account_id": acme})
        for name in ["Eve", "eve", "Al", "Zed", "Mo"]
    }

    for limit in (1, 3, 8, 100):
        items = walk(client, "/directory/accounts", limit)
        assert [item["id"] for item in items] != []
        assert len(items) == len({item["id"] for item in items}) == len(ids)
        assert {item["id"] for item in items} == ids
        keys = [item["name"].lower() for item in items]
        assert keys == sorted(keys)

        people = walk(client, "/directory/contacts", limit, account=acme)
        assert sorted(item["id"] for item in people) == sorted(contact_ids)

    # A filtered listing pages over the filtered rows only.
    assert [i["name"].lower() for i in walk(client, "/directory/accounts", 1, q="acme")] == [
        "acme"
    ] * 3


def test_an_account_detail_rolls_the_open_pipeline_up_its_subtree(client: Client) -> None:
    pipeline = client.pipeline()
    group = client.post("/accounts", {"name": "Group"})
    europe = client.post("/accounts", {"name": "Europe", "parent_id": group})
    germany = client.post("/accounts", {"name": "Germany", "parent_id": europe})
    other = client.post("/accounts", {"name": "Other"})

    def deal(account: str, amount: str, currency: str) -> str:
        body = {
            "title": "Deal",
            "amount": amount,
            "currency": currency,
            "pipeline_id": pipeline,
            "account_id": account,
        }
        return client.post("/deals", body)

    deal(group, "1.50", "EUR")
    lost = deal(germany, "10", "EUR")
    deal(germany, "20", "USD")
    deal(other, "99", "EUR")
    client.post(f"/deals/{lost}/lost", {"reason": "price"})

    detail = client.get(f"/directory/accounts/{group}")
    assert [child["name"] for child in detail["children"]] == ["Europe"]
    assert [(d["name"], d["depth"]) for d in detail["descendants"]] == [
        ("Europe", 1),
        ("Germany", 2),
    ]
    assert detail["open_pipeline"] == {
        "deals": 1,
        "by_currency": [{"currency": "EUR", "deals": 1, "amount": "1.50"}],
    }
    assert detail["subtree_open_pipeline"] == {
        "deals": 2,
        "by_currency": [
            {"currency": "EUR", "deals": 1, "amount": "1.50"},
            {"currency": "USD", "deals": 1, "amount": "20.00"},
        ],
    }

    # Europe (with Germany below it) moves under Other.
    client.post(f"/accounts/{europe}/parent", {"parent_id": other})
    client.post(f"/deals/{lost}/reopen", {})

    assert client.get(f"/directory/accounts/{group}")["subtree_open_pipeline"] == {
        "deals": 1,
        "by_currency": [{"currency": "EUR", "deals": 1, "amount": "1.50"}],
    }
    moved = client.get(f"/directory/accounts/{other}")
    assert [(d["name"], d["depth"]) for d in moved["descendants"]] == [
        ("Europe", 1),
        ("Germany", 2),
    ]
    assert moved["subtree_open_pipeline"] == {
        "deals": 3,
        "by_currency": [
            {"currency": "EUR", "deals": 2, "amount": "109.00"},
            {"currency": "USD", "deals": 1, "amount": "20.00"},
        ],
    }
    assert client.names("/directory/accounts", parent=other) == ["Europe"]


def test_an_unknown_account_is_a_404_problem(api: httpx.Client) -> None:
    response = api.get("/directory/accounts/00000000-0000-4000-8000-000000000000")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/directory/accounts", {"limit": "0"}),
        ("/directory/accounts", {"limit": "1001"}),
        ("/directory/accounts", {"after": "garbage!"}),
        ("/directory/accounts", {"after": encode_cursor("acme")}),
        ("/directory/accounts", {"after": encode_cursor("acme", "not-a-uuid")}),
        (
            "/directory/accounts",
            {"after": encode_cursor(None, "00000000-0000-4000-8000-000000000000")},
        ),
        ("/directory/accounts", {"after": encode_cursor(1, 2)}),
        ("/directory/accounts", {"min_position": "-1"}),
        ("/directory/accounts", {"owner": "someone"}),
        ("/directory/accounts", {"parent": "1"}),
        ("/directory/accounts", {"country": "DEU"}),
        ("/directory/accounts", {"archived": "maybe"}),
        ("/directory/accounts", {"q": ""}),
        ("/directory/accounts", {"q": "x" * 201}),
        ("/directory/accounts", {"industry": "x" * 101}),
        ("/directory/accounts/not-a-uuid", {}),
        ("/directory/accounts/00000000-0000-4000-8000-000000000000", {"min_position": "x"}),
        ("/directory/contacts", {"lifecycle_stage": "alien"}),
        ("/directory/contacts", {"tag": "x" * 51}),
        ("/directory/contacts", {"tag": "   "}),
        ("/directory/contacts", {"account": "acme"}),
        ("/directory/contacts", {"country": "1"}),
        ("/directory/contacts", {"after": encode_cursor("a", "b", "c")}),
        ("/directory/contacts", {"limit": "many"}),
    ],
)
def test_bad_directory_parameters_are_422_problems(
    api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = api.get(path, params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_directory_reads_need_a_token(server: str) -> None:
    for path in ("/directory/accounts", "/directory/contacts"):
        response = httpx.get(server + path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
