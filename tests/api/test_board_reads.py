"""The pipeline board over real HTTP: the board with its filters, a stage paged with
cursors, the list of pipelines, read-your-writes, and bad parameters refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.cursors import encode_cursor

UNKNOWN = "00000000-0000-4000-8000-000000000000"


class Client:
    """Commands through the API, remembering the last position for the reads."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.position = 0

    def post(self, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.post(path, json=json or {})
        assert response.status_code in (200, 201), response.text
        receipt: dict[str, Any] = response.json()
        self.position = max(self.position, receipt["position"])
        return receipt

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params={"min_position": self.position, **params})
        assert response.status_code == 200, response.text
        return response.json()

    def pipeline(self, name: str = "Sales") -> tuple[str, list[str]]:
        stages = [{"name": "Lead", "probability": 10}, {"name": "Proposal", "probability": 40}]
        pipeline_id = self.post("/pipelines", {"name": name, "stages": stages})["id"]
        detail = self.api.get(f"/pipelines/{pipeline_id}").json()
        return pipeline_id, [stage["id"] for stage in detail["stages"]]

    def deal(self, pipeline_id: str, amount: str, currency: str = "EUR", **fields: Any) -> str:
        body = {"title": f"{amount} {currency}", "amount": amount, "currency": currency}
        receipt = self.post("/deals", {**body, "pipeline_id": pipeline_id, **fields})
        return str(receipt["id"])


@pytest.fixture
def client(api: httpx.Client) -> Client:
    return Client(api)


def titles(stage: dict[str, Any]) -> list[str]:
    return [deal["title"] for deal in stage["items"]]


def test_the_board_shows_stages_deals_and_totals(client: Client) -> None:
    account = client.post("/accounts", {"name": "Acme"})["id"]
    pipeline_id, (lead, proposal) = client.pipeline()
    big = client.deal(pipeline_id, "1000.50", account_id=account, expected_close_date="2030-06-30")
    client.deal(pipeline_id, "20", "USD")
    moved = client.deal(pipeline_id, "300")
    client.post(f"/deals/{moved}/stage-changes", {"stage": "Proposal"})
    client.post(
        "/interactions/notes",
        {"occurred_at": "2024-05-01T08:00:00Z", "deal_id": big, "body": "call notes"},
    )

    view = client.get(f"/board/{pipeline_id}")

    assert view["pipeline_id"] == pipeline_id
    assert view["name"] == "Sales"
    assert [(s["stage_id"], s["name"], s["probability"]) for s in view["stages"]] == [
        (lead, "Lead", 10),
        (proposal, "Proposal", 40),
    ]
    first, second = view["stages"]
    assert titles(first) == ["1000.50 EUR", "20 USD"]
    assert titles(second) == ["300 EUR"]
    assert first["totals"] == [
        {"currency": "EUR", "deals": 1, "amount": "1000.5000", "weighted_amount": "100.050000"},
        {"currency": "USD", "deals": 1, "amount": "20.0000", "weighted_amount": "2.000000"},
    ]
    assert (first["deals"], first["next"]) == (2, None)
    assert [(t["currency"], Decimal(t["amount"])) for t in view["totals"]] == [
        ("EUR", Decimal("1300.50")),
        ("USD", Decimal(20)),
    ]
    deal = first["items"][0]
    assert deal["deal_id"] == big
    assert (deal["account_id"], deal["account_name"]) == (account, "Acme")
    assert deal["expected_close_date"] == "2030-06-30"
    assert deal["probability"] == 10
    assert Decimal(deal["weighted_amount"]) == Decimal("100.05")
    assert datetime.fromisoformat(deal["last_interaction_at"]) == datetime.fromisoformat(
        "2024-05-01T08:00:00+00:00"
    )
    as_of = datetime.fromisoformat(view["as_of"])
    entered = datetime.fromisoformat(deal["stage_entered_at"])
    assert entered <= as_of
    assert deal["days_in_stage"] == (as_of - entered) // timedelta(days=1)


def test_a_board_read_with_a_commands_position_sees_the_change(api: httpx.Client) -> None:
    client = Client(api)
    pipeline_id, _ = client.pipeline()
    for n in range(3):
        receipt = api.post(
            "/deals",
            json={
                "title": f"deal {n}",
                "amount": "10",
                "currency": "EUR",
                "pipeline_id": pipeline_id,
            },
        ).json()
        view = api.get(f"/board/{pipeline_id}", params={"min_position": receipt["position"]})
        assert view.status_code == 200, view.text
        assert titles(view.json()["stages"][0]) == [f"deal {n}"]

        won = api.post(f"/deals/{receipt['id']}/won", json={}).json()
        view = api.get(f"/board/{pipeline_id}", params={"min_position": won["position"]})
        assert view.json()["deals"] == 0


def test_the_board_is_filtered_by_owner_and_currency(client: Client) -> None:
    invited = client.post(
        "/users", {"email": "rep@example.com", "name": "Rep", "role": "sales_rep"}
    )
    rep = invited["id"]
    pipeline_id, _ = client.pipeline()
    client.deal(pipeline_id, "1", "EUR", title="mine")
    client.deal(pipeline_id, "2", "USD", title="mine in USD")
    client.deal(pipeline_id, "3", "EUR", title="theirs", owner_id=rep)

    def lead(**params: Any) -> list[str]:
        return titles(client.get(f"/board/{pipeline_id}", **params)["stages"][0])

    assert lead(owner=rep) == ["theirs"]
    assert lead(currency="eur") == ["mine", "theirs"]
    assert lead(currency="USD") == ["mine in USD"]
    assert lead(owner=UNKNOWN) == []
    assert client.get(f"/board/{pipeline_id}", owner=rep)["totals"] == [
        {"currency": "EUR", "deals": 1, "amount": "3.0000", "weighted_amount": "0.300000"}
    ]


def test_a_stage_is_paged_with_cursors_from_the_board_on(client: Client) -> None:
    pipeline_id, (lead, _) = client.pipeline()
    created = [client.deal(pipeline_id, str(n + 1), title=f"deal {n}") for n in range(11)]

    stage = client.get(f"/board/{pipeline_id}", limit=4)["stages"][0]
    assert titles(stage) == [f"deal {n}" for n in range(4)]
    assert stage["deals"] == 11
    assert stage["next"] is not None

    seen = [deal["deal_id"] for deal in stage["items"]]
    after = stage["next"]
    path = f"/board/{pipeline_id}/stages/{lead}/deals"
    for _ in range(20):
        page = client.get(path, after=after, limit=3)
        assert len(page["items"]) <= 3
        seen += [deal["deal_id"] for deal in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == created

    whole = client.get(path)
    assert [deal["deal_id"] for deal in whole["items"]] == created
    assert whole["next"] is None


def test_pipelines_are_listed(client: Client) -> None:
    sales, (lead, proposal) = client.pipeline("Sales")
    renewals, _ = client.pipeline("Renewals")
    client.deal(sales, "5")

    listed = client.get("/board")["items"]

    assert [(p["pipeline_id"], p["name"], p["deals"]) for p in listed] == [
        (renewals, "Renewals", 0),
        (sales, "Sales", 1),
    ]
    assert listed[1]["stages"] == [
        {"stage_id": lead, "name": "Lead", "probability": 10, "position": 0},
        {"stage_id": proposal, "name": "Proposal", "probability": 40, "position": 1},
    ]


def test_unknown_pipelines_and_stages_are_404_problems(client: Client) -> None:
    pipeline_id, (lead, _) = client.pipeline()
    _, (other_stage, _) = client.pipeline("Other")
    client.get("/board")  # caught up

    for path in (
        f"/board/{UNKNOWN}",
        f"/board/{UNKNOWN}/stages/{lead}/deals",
        f"/board/{pipeline_id}/stages/{other_stage}/deals",
    ):
        response = client.api.get(path, params={"min_position": client.position})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/board/not-a-uuid", {}),
        ("/board/{pipeline}", {"owner": "someone"}),
        ("/board/{pipeline}", {"currency": "EURO"}),
        ("/board/{pipeline}", {"currency": "€"}),
        ("/board/{pipeline}", {"limit": "-1"}),
        ("/board/{pipeline}", {"limit": "501"}),
        ("/board/{pipeline}", {"min_position": "-1"}),
        ("/board/{pipeline}", {"min_position": "later"}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": "not a cursor"}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": encode_cursor("x")}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": encode_cursor(1, 2)}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": encode_cursor(-5)}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": encode_cursor(2**63)}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": encode_cursor(True)}),
        ("/board/{pipeline}/stages/{stage}/deals", {"after": "x" * 5000}),
        ("/board/{pipeline}/stages/{stage}/deals", {"limit": "0"}),
        ("/board/{pipeline}/stages/{stage}/deals", {"limit": "1001"}),
        ("/board/{pipeline}/stages/not-a-uuid/deals", {}),
    ],
)
def test_bad_board_parameters_are_422_problems(
    client: Client, path: str, params: dict[str, str]
) -> None:
    pipeline_id, (lead, _) = client.pipeline()
    url = path.format(pipeline=pipeline_id, stage=lead)

    response = client.api.get(url, params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_board_reads_need_a_token(server: str) -> None:
    for path in ("/board", f"/board/{UNKNOWN}", f"/board/{UNKNOWN}/stages/{UNKNOWN}/deals"):
        response = httpx.get(server + path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
