"""The reports over real HTTP: filters, cursor pagination, read-your-writes with
``min_position``, and bad parameters refused as problem+json."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import httpx
import pytest

from api.cursors import encode_cursor


def post(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def pipeline(api: httpx.Client, *stages: tuple[str, int]) -> tuple[str, dict[str, str]]:
    receipt = post(
        api,
        "/pipelines",
        {"name": "Sales", "stages": [{"name": n, "probability": p} for n, p in stages]},
    )
    shown = get(api, f"/pipelines/{receipt['id']}")
    return receipt["id"], {s["name"]: s["id"] for s in shown["stages"]}


def deal(api: httpx.Client, pipeline_id: str, **fields: Any) -> str:
    body = {"title": "Deal", "amount": "1000.00", "currency": "EUR", "pipeline_id": pipeline_id}
    receipt = post(api, "/deals", {**body, **fields})
    deal_id: str = receipt["id"]
    return deal_id


def me(api: httpx.Client) -> str:
    user_id: str = get(api, "/users/me")["id"]
    return user_id


def walk(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a paginated report, page by page."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = get(api, path, **params, **({"after": after} if after else {}))
        rows.extend(page["items"])
        after = page["next"]
        if after is None:
            return rows


def test_stage_transitions_filter_and_page_without_gaps_or_repeats(api: httpx.Client) -> None:
    first, stages = pipeline(api, ("Lead", 10), ("Demo", 50), ("Offer", 80))
    second, _ = pipeline(api, ("Intro", 20))
    a = deal(api, first)
    b = deal(api, first)
    c = deal(api, second)
    post(api, f"/deals/{a}/stage-changes", {"stage": "Demo"})
    post(api, f"/deals/{a}/stage-changes", {"stage": "Offer"})
    post(api, f"/deals/{b}/lost", {"reason": "no budget"})
    post(api, f"/deals/{b}/reopen", {"stage": "Demo"})
    last = post(api, f"/deals/{a}/won", {})

    everything = get(api, "/reports/stage-transitions", min_position=last["position"], limit=1000)[
        "items"
    ]
    assert [(r["deal_id"], r["kind"], r["to_stage_name"]) for r in everything] == [
        (a, "opened", "Lead"),
        (b, "opened", "Lead"),
        (c, "opened", "Intro"),
        (a, "moved", "Demo"),
        (a, "moved", "Offer"),
        (b, "lost", "lost"),
        (b, "reopened", "Demo"),
        (a, "won", "won"),
    ]
    of_a = [r for r in everything if r["deal_id"] == a]
    assert of_a[-1]["from_stage"] == stages["Offer"]
    times = [datetime.fromisoformat(r["at"]) for r in of_a]
    assert [r["seconds_in_previous"] for r in of_a[1:]] == [
        pytest.approx((later - earlier).total_seconds()) for earlier, later in pairwise(times)
    ]

    for limit in (1, 3, 8):
        assert walk(api, "/reports/stage-transitions", limit=limit) == everything
    assert get(api, "/reports/stage-transitions", limit=8)["next"] is None
    assert get(api, "/reports/stage-transitions", deal_id=a)["items"] == of_a
    in_second = get(api, "/reports/stage-transitions", pipeline_id=second)["items"]
    assert [r["deal_id"] for r in in_second] == [c]
    owned = get(api, "/reports/stage-transitions", owner=me(api))["items"]
    assert owned == everything
    since, until = everything[3]["at"], everything[6]["at"]
    window = walk(api, "/reports/stage-transitions", since=since, until=until, limit=2)
    assert window == [
        r
        for r in everything
        if datetime.fromisoformat(since)
        <= datetime.fromisoformat(r["at"])
        < datetime.fromisoformat(until)
    ]


def test_funnel_reports_reach_and_conversion_per_stage(api: httpx.Client) -> None:
    pipeline_id, stages = pipeline(api, ("Lead", 10), ("Demo", 50), ("Offer", 80))
    for stage in ("Lead", "Lead", "Demo", "Offer"):
        deal(api, pipeline_id, stage=stage)
    won = deal(api, pipeline_id)
    last = post(api, f"/deals/{won}/won", {})

    report = get(api, "/reports/funnel", pipeline_id=pipeline_id, min_position=last["position"])

    assert (report["deals"], report["open"], report["won"], report["lost"]) == (5, 4, 1, 0)
    assert [
        (s["stage_id"], s["name"], s["reached"], s["conversion_to_next"], s["conversion_to_won"])
        for s in report["stages"]
    ] == [
        (stages["Lead"], "Lead", 5, 3 / 5, 1 / 5),
        (stages["Demo"], "Demo", 3, 2 / 3, 1 / 3),
        (stages["Offer"], "Offer", 2, 1 / 2, 1 / 2),
    ]
    nothing_yet = get(api, "/reports/funnel", pipeline_id=pipeline_id, until="2000-01-01T00:00:00Z")
    assert [s["reached"] for s in nothing_yet["stages"]] == [0, 0, 0]


def test_funnel_of_an_unknown_pipeline_is_404(api: httpx.Client) -> None:
    response = api.get(
        "/reports/funnel", params={"pipeline_id": "00000000-0000-0000-0000-000000000001"}
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_win_rate_per_owner_and_period(api: httpx.Client) -> None:
    pipeline_id, _ = pipeline(api, ("Lead", 10))
    owner = me(api)
    deals = [deal(api, pipeline_id) for _ in range(4)]
    post(api, f"/deals/{deals[0]}/won", {})
    post(api, f"/deals/{deals[1]}/won", {})
    post(api, f"/deals/{deals[2]}/lost", {})
    post(api, f"/deals/{deals[3]}/won", {})
    last = post(api, f"/deals/{deals[3]}/reopen", {})  # open again: not counted

    rows = get(api, "/reports/win-rate", period="quarter", min_position=last["position"])["items"]
    closes = [
        datetime.fromisoformat(r["at"])
        for d in deals[:3]
        for r in get(api, "/reports/stage-transitions", deal_id=d)["items"]
        if r["kind"] in ("won", "lost")
    ]
    quarters = {f"{t.year}-Q{(t.month - 1) // 3 + 1}" for t in closes}
    assert [r["period"] for r in rows] == sorted(quarters)
    assert {r["owner_id"] for r in rows} == {owner}
    assert sum(r["won"] for r in rows) == 2
    assert sum(r["lost"] for r in rows) == 1
    if len(rows) == 1:  # unless the test ran across a quarter's end
        assert rows[0]["win_rate"] == pytest.approx(2 / 3)
        assert rows[0]["closed"] == 3
        assert 0 < rows[0]["avg_cycle_days"] < 1
    assert (
        get(api, "/reports/win-rate", owner="00000000-0000-0000-0000-000000000001")["items"] == []
    )
    monthly = get(api, "/reports/win-rate")["items"]
    assert sum(r["closed"] for r in monthly) == 3


def test_activity_counts_by_day_user_and_kind_and_follows_corrections(
    api: httpx.Client,
) -> None:
    pipeline_id, _ = pipeline(api, ("Lead", 10))
    deal_id = deal(api, pipeline_id)
    call = {"deal_id": deal_id, "direction": "outbound", "duration_seconds": 30}
    post(
        api,
        "/interactions/calls",
        {**call, "outcome": "busy", "occurred_at": "2024-05-01T10:00:00Z"},
    )
    post(
        api,
        "/interactions/calls",
        {**call, "outcome": "busy", "occurred_at": "2024-05-02T10:00:00Z"},
    )
    moved = post(
        api,
        "/interactions/emails",
        {"deal_id": deal_id, "direction": "inbound", "occurred_at": "2024-05-01T10:00:00Z"},
    )
    post(
        api,
        "/interactions/notes",
        {"deal_id": deal_id, "body": "n", "occurred_at": "2024-05-03T09:00:00+02:00"},
    )
    gone = post(
        api,
        "/interactions/sms",
        {
            "deal_id": deal_id,
            "direction": "outbound",
            "body": "x",
            "occurred_at": "2024-05-01T12:00:00Z",
        },
    )
    post(api, f"/interactions/{moved['id']}/corrections", {"occurred_at": "2024-05-02T23:59:59Z"})
    last = post(api, f"/interactions/{gone['id']}/retraction", {"reason": "sent to no one"})
    user = me(api)

    rows = get(api, "/reports/activity", min_position=last["position"])["items"]

    assert [(r["day"], r["user_id"], r["kind"], r["count"]) for r in rows] == [
        ("2024-05-01", user, "call", 1),
        ("2024-05-02", user, "call", 1),
        ("2024-05-02", user, "email", 1),
        ("2024-05-03", user, "note", 1),
    ]
    assert walk(api, "/reports/activity", limit=1) == rows
    assert walk(api, "/reports/activity", limit=3) == rows
    assert get(api, "/reports/activity", kind="call", since="2024-05-02")["items"] == [rows[1]]
    assert get(api, "/reports/activity", until="2024-05-02", user=user)["items"] == [rows[0]]
    assert get(api, "/reports/activity", user=user.upper())["items"] == rows
    assert get(api, "/reports/activity", user="system")["items"] == []


def test_forecast_follows_reweighting_with_read_your_writes(api: httpx.Client) -> None:
    pipeline_id, stages = pipeline(api, ("Lead", 10), ("Offer", 75))
    owner = me(api)
    deal(api, pipeline_id, amount="200.00", expected_close_date="2024-09-10")
    deal(api, pipeline_id, amount="1000", stage="Offer", expected_close_date="2024-09-30")
    deal(api, pipeline_id, amount="50", currency="USD", expected_close_date="2024-10-01")
    last = post(
        api,
        "/deals",
        {"title": "No date", "amount": "10", "currency": "EUR", "pipeline_id": pipeline_id},
    )

    rows = get(api, "/reports/forecast", min_position=last["position"])["items"]

    assert [
        (
            r["month"],
            r["owner_id"],
            r["currency"],
            r["deals"],
            Decimal(r["amount"]),
            Decimal(r["weighted"]),
        )
        for r in rows
    ] == [
        ("2024-09", owner, "EUR", 2, Decimal("1200"), Decimal("770")),
        ("2024-10", owner, "USD", 1, Decimal("50"), Decimal("5")),
        (None, owner, "EUR", 1, Decimal("10"), Decimal("1")),
    ]

    reweighted = api.patch(
        f"/pipelines/{pipeline_id}/stages/{stages['Lead']}", json={"probability": 20}
    )
    assert reweighted.status_code == 200, reweighted.text
    after = get(
        api,
        "/reports/forecast",
        min_position=reweighted.json()["position"],
        currency="EUR",
        from_month="2024-09",
        to_month="2024-09",
        owner=owner,
    )["items"]
    assert [(r["month"], Decimal(r["weighted"])) for r in after] == [("2024-09", Decimal("790"))]


BAD = [
    ("/reports/stage-transitions", {"after": "not-a-cursor"}),
    ("/reports/stage-transitions", {"after": encode_cursor("x")}),
    ("/reports/stage-transitions", {"after": encode_cursor(None)}),
    ("/reports/stage-transitions", {"after": encode_cursor(1, 2)}),
    ("/reports/stage-transitions", {"limit": "0"}),
    ("/reports/stage-transitions", {"limit": "5000"}),
    ("/reports/stage-transitions", {"deal_id": "nope"}),
    ("/reports/stage-transitions", {"owner": "system"}),
    ("/reports/stage-transitions", {"since": "2024-01-01T00:00:00"}),
    ("/reports/stage-transitions", {"until": "tomorrow"}),
    ("/reports/stage-transitions", {"min_position": "-1"}),
    ("/reports/funnel", {}),
    ("/reports/funnel", {"pipeline_id": "x"}),
    ("/reports/funnel", {"pipeline_id": "00000000-0000-0000-0000-000000000001", "since": "x"}),
    ("/reports/win-rate", {"period": "week"}),
    ("/reports/win-rate", {"owner": "someone"}),
    ("/reports/win-rate", {"until": "2024-13-01T00:00:00Z"}),
    ("/reports/activity", {"kind": "fax"}),
    ("/reports/activity", {"since": "2024-02-30"}),
    ("/reports/activity", {"user": "not-a-user"}),
    ("/reports/activity", {"user": "x" * 100}),
    ("/reports/activity", {"after": encode_cursor("2024-05-01", "u")}),
    ("/reports/activity", {"after": encode_cursor("yesterday", "u", "call")}),
    ("/reports/activity", {"after": encode_cursor("2024-05-01", None, "call")}),
    ("/reports/activity", {"after": "%%%"}),
    ("/reports/forecast", {"currency": "eur"}),
    ("/reports/forecast", {"from_month": "2024-13"}),
    ("/reports/forecast", {"to_month": "2024-1"}),
    ("/reports/forecast", {"owner": "1"}),
    ("/reports/forecast", {"min_position": "soon"}),
]


@pytest.mark.parametrize(("path", "params"), BAD)
def test_bad_report_parameters_are_422_problems(
    api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = api.get(path, params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_reports_need_a_token(server: str) -> None:
    for path in ("stage-transitions", "funnel", "win-rate", "activity", "forecast"):
        response = httpx.get(f"{server}/reports/{path}")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
