"""The read endpoints as of a moment or position, over real HTTP on SQLite and
PostgreSQL: a deal moved after the moment shows in its old stage, days in stage are
counted then, "as recorded by then" differs from "happened by then", and bad values
are 422 problems. Also the cache of read models built as of a position."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from commands.accounts import RegisterAccount
from commands.app import Crm
from commands.handlers import execute
from replay import as_of as as_of_module
from replay.as_of import AsOfBusyError, AsOfCache
from tests.api.test_board_reads import Client, titles
from tests.conftest import Person


@pytest.fixture
def client(api: httpx.Client) -> Client:
    return Client(api)


def as_of(client: Client, path: str, **params: Any) -> tuple[Any, int]:
    response = client.api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json(), int(response.headers["X-As-Of-Position"])


def test_the_board_as_of_a_past_moment_shows_the_deals_where_they_stood(client: Client) -> None:
    pipeline_id, _ = client.pipeline()
    moved = client.deal(pipeline_id, "100")
    won = client.deal(pipeline_id, "200")
    then_position = client.position
    then = datetime.now(UTC)
    client.post(f"/deals/{moved}/stage-changes", {"stage": "Proposal"})
    client.post(f"/deals/{won}/won", {})
    client.deal(pipeline_id, "300")

    live = client.get(f"/board/{pipeline_id}")
    past, position = as_of(client, f"/board/{pipeline_id}", as_of=then.isoformat())

    assert [titles(stage) for stage in live["stages"]] == [["300 EUR"], ["100 EUR"]]
    assert [titles(stage) for stage in past["stages"]] == [["100 EUR", "200 EUR"], []]
    assert position == then_position
    assert datetime.fromisoformat(past["as_of"]) == then
    assert past["deals"] == 2
    assert Decimal(past["totals"][0]["amount"]) == Decimal(300)
    # The same board by position; its moment is when that position was recorded.
    by_position, same = as_of(client, f"/board/{pipeline_id}", as_of_position=then_position)
    assert same == then_position
    assert [titles(stage) for stage in by_position["stages"]] == [["100 EUR", "200 EUR"], []]
    assert datetime.fromisoformat(by_position["as_of"]) <= then
    # A stage's page as of then, too.
    lead = past["stages"][0]["stage_id"]
    page, _ = as_of(client, f"/board/{pipeline_id}/stages/{lead}/deals", as_of=then.isoformat())
    assert [deal["title"] for deal in page["items"]] == ["100 EUR", "200 EUR"]


def test_days_in_stage_are_counted_at_the_moment_asked_for(client: Client) -> None:
    pipeline_id, _ = client.pipeline()
    client.deal(pipeline_id, "100")
    live = client.get(f"/board/{pipeline_id}")
    entered = datetime.fromisoformat(live["stages"][0]["items"][0]["stage_entered_at"])
    # Ten days on, nothing else recorded: the same deal, ten days in its stage.
    later = entered + timedelta(days=10, hours=1)
    view, position = as_of(client, f"/board/{pipeline_id}", as_of=later.isoformat())
    # A moment in the future reads as of now: days cannot be counted ahead.
    assert position == client.position
    assert datetime.fromisoformat(view["as_of"]) < later
    assert view["stages"][0]["items"][0]["days_in_stage"] == 0
    # In the past, after the deal was opened, the moment is the one asked for.
    just_after = entered + timedelta(microseconds=1)
    view, _ = as_of(client, f"/board/{pipeline_id}", as_of=just_after.isoformat())
    assert datetime.fromisoformat(view["as_of"]) == just_after


def test_before_the_first_event_the_crm_is_empty(client: Client) -> None:
    pipeline_id, _ = client.pipeline()
    early = "2000-01-01T00:00:00Z"
    pipelines, position = as_of(client, "/board", as_of=early)
    assert pipelines == {"items": []}
    assert position == 0
    response = client.api.get(f"/board/{pipeline_id}", params={"as_of": early})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    accounts, _ = as_of(client, "/directory/accounts", as_of_position=0)
    assert accounts["items"] == []


def test_as_recorded_by_then_is_not_what_happened_by_then(client: Client) -> None:
    contact = client.post("/contacts", {"first_name": "Ada", "last_name": "Lovelace"})["id"]
    then = datetime.now(UTC)
    # Logged after `then`, about a meeting a week before it.
    happened = (then - timedelta(days=7)).isoformat()
    client.post(
        "/interactions/notes",
        {"occurred_at": happened, "contact_ids": [contact], "body": "met at the fair"},
    )
    timeline = f"/timeline/contact/{contact}"

    happened_by_then = client.get(timeline, until=then.isoformat(), kinds="interaction")
    recorded_by_then, _ = as_of(client, timeline, as_of=then.isoformat(), kinds="interaction")

    assert [entry["kind"] for entry in happened_by_then["items"]] == ["note"]
    assert recorded_by_then["items"] == []
    activity, _ = as_of(client, "/reports/activity", as_of=then.isoformat())
    assert activity["items"] == []
    assert [row["count"] for row in client.get("/reports/activity")["items"]] == [1]


def test_every_read_model_answers_as_of_a_moment(client: Client) -> None:
    account = client.post("/accounts", {"name": "Acme"})["id"]
    pipeline_id, _ = client.pipeline()
    deal = client.deal(pipeline_id, "100", account_id=account)
    then = datetime.now(UTC).isoformat()
    renamed = client.api.patch(f"/accounts/{account}", json={"name": "Acme Group"})
    assert renamed.status_code == 200, renamed.text
    client.position = renamed.json()["position"]
    client.post(f"/deals/{deal}/won", {})

    past_account, _ = as_of(client, f"/directory/accounts/{account}", as_of=then)
    assert past_account["name"] == "Acme"
    assert client.get(f"/directory/accounts/{account}")["name"] == "Acme Group"
    audit, position = as_of(client, "/audit", as_of=then, limit=1000)
    assert audit["items"]
    assert max(item["position"] for item in audit["items"]) == position
    assert "Deal.Won" not in {item["action"] for item in audit["items"]}
    deal_timeline, _ = as_of(client, f"/timeline/deal/{deal}", as_of=then)
    assert "Deal.Won" not in {entry["kind"] for entry in deal_timeline["items"]}
    funnel, _ = as_of(client, "/reports/funnel", as_of=then, pipeline_id=pipeline_id)
    assert (funnel["open"], funnel["won"]) == (1, 0)
    assert client.get("/reports/funnel", pipeline_id=pipeline_id)["won"] == 1
    forecast, _ = as_of(client, "/reports/forecast", as_of=then)
    assert [Decimal(row["amount"]) for row in forecast["items"]] == [Decimal(100)]


@pytest.mark.parametrize(
    "params",
    [
        {"as_of": "yesterday"},
        {"as_of": "2026-09-30T12:00:00"},  # no time zone
        {"as_of": "0001-01-01T00:00:00+01:00"},  # before what UTC can hold
        {"as_of_position": "-1"},
        {"as_of_position": "x"},
        {"as_of_position": str(2**63)},
        {"as_of": "2026-09-30T12:00:00Z", "as_of_position": "3"},
    ],
)
def test_bad_as_of_values_are_422_problems(client: Client, params: dict[str, str]) -> None:
    pipeline_id, _ = client.pipeline()
    for path in (f"/board/{pipeline_id}", "/audit", "/directory/accounts", "/reports/forecast"):
        response = client.api.get(path, params=params)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_the_cache_builds_a_read_model_once_per_position(crm: Crm, owner: Person) -> None:
    first = execute(crm, RegisterAccount(name="Acme"), owner.ctx).position
    second = execute(crm, RegisterAccount(name="Globex"), owner.ctx).position
    cache = AsOfCache(crm.recorder, size=2)
    built = cache.get(first, "directory")
    reader = built.reader()
    assert cache.get(first, "directory") is built
    assert cache.builds == 1
    cache.get(second, "directory")
    cache.get(second, "audit")  # the first drops out of the cache
    assert cache.builds == 3
    assert cache.get(first, "directory") is not built
    assert cache.builds == 4
    # A read that began on a dropped entry goes on.
    names = reader.execute("SELECT name FROM directory_accounts").fetchall()
    assert names == [("Acme",)]
    reader.close()


def test_builds_wait_their_turn_and_are_refused_when_it_takes_too_long(
    crm: Crm, owner: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each build reads a prefix of the log into memory: one at a time, and a request
    that cannot get its turn in time is refused (503) instead of piling up."""
    first = execute(crm, RegisterAccount(name="Acme"), owner.ctx).position
    second = execute(crm, RegisterAccount(name="Globex"), owner.ctx).position
    cache = AsOfCache(crm.recorder, builders=1, wait_seconds=0.2)
    building, release = threading.Event(), threading.Event()
    real = as_of_module.read_models_as_of

    def slow(*args: Any, **kwargs: Any) -> Any:
        building.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(as_of_module, "read_models_as_of", slow)
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(cache.get, first, "directory")
        assert building.wait(10)
        with pytest.raises(AsOfBusyError):
            cache.get(second, "directory")
        release.set()
        assert held.result(10).position == first
    assert cache.get(second, "directory").position == second  # its turn now
    assert cache.builds == 2
