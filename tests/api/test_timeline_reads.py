"""``GET /timeline/{kind}/{record_id}`` over real HTTP: read-your-writes, both orders
with backdated interactions, corrections moving links, retractions, filters, cursor
pages, and bad parameters refused as problem+json."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from api.cursors import encode_cursor

PROBLEM = "application/problem+json"


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def note(api: httpx.Client, day: int, body: str, **links: Any) -> dict[str, Any]:
    return created(
        api.post(
            "/interactions/notes",
            json={"occurred_at": f"2024-03-{day:02d}T09:00:00Z", "body": body, **links},
        )
    )


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def read(
    api: httpx.Client, kind: str, record_id: str, position: int, **params: Any
) -> dict[str, Any]:
    return ok(api.get(f"/timeline/{kind}/{record_id}", params={"min_position": position, **params}))


@pytest.fixture
def contact(api: httpx.Client) -> dict[str, Any]:
    return created(api.post("/contacts", json={"first_name": "Ann", "last_name": "Lee"}))


def test_a_read_with_the_position_a_command_returned_sees_the_change(
    api: httpx.Client, contact: dict[str, Any]
) -> None:
    for tag in ("vip", "partner", "churn-risk"):
        receipt = ok(api.post(f"/contacts/{contact['id']}/tags", json={"tag": tag}))
        # No sleeping: the read waits until the timeline has reached the position.
        page = read(api, "contact", contact["id"], receipt["position"], limit=1)
        (entry,) = page["items"]
        assert entry["kind"] == "Contact.Tagged"
        assert entry["summary"] == f"Tagged {tag}"
        assert entry["position"] == receipt["position"]
        assert page["next"] is not None


def test_backdated_interactions_in_both_orders(api: httpx.Client, contact: dict[str, Any]) -> None:
    on_contact = {"contact_ids": [contact["id"]]}
    late = note(api, 10, "Happened on the 10th", **on_contact)
    early = note(api, 5, "Happened on the 5th, logged second", **on_contact)
    middle = note(api, 7, "Happened on the 7th, logged last", **on_contact)

    def ids(**params: Any) -> list[str]:
        page = read(api, "contact", contact["id"], middle["position"], kinds="note", **params)
        return [item["entity_id"] for item in page["items"]]

    assert ids() == [late["id"], middle["id"], early["id"]]
    assert ids(oldest_first="true") == [early["id"], middle["id"], late["id"]]
    assert ids(order="logged") == [middle["id"], early["id"], late["id"]]
    assert ids(order="logged", oldest_first="true") == [late["id"], early["id"], middle["id"]]
    items = read(api, "contact", contact["id"], middle["position"], order="logged")["items"]
    backdated = next(i for i in items if i["entity_id"] == early["id"])
    before_it = next(i for i in items if i["entity_id"] == late["id"])
    assert backdated["occurred_at"] == "2024-03-05T09:00:00Z"
    # Logged after the note of the 10th, though it happened before it.
    assert moment(backdated["recorded_at"]) > moment(before_it["recorded_at"])
    assert backdated["position"] > before_it["position"]
    assert backdated["summary"] == "Note: Happened on the 5th, logged second"
    assert backdated["payload"]["body"] == "Happened on the 5th, logged second"


def test_a_correction_moves_an_interaction_between_timelines(
    api: httpx.Client, contact: dict[str, Any]
) -> None:
    account = created(api.post("/accounts", json={"name": "Acme"}))
    bob = created(api.post("/contacts", json={"first_name": "Bob"}))
    logged = note(api, 4, "Pricing call notes", contact_ids=[contact["id"]])

    correction = ok(
        api.post(
            f"/interactions/{logged['id']}/corrections",
            json={
                "contact_ids": [bob["id"]],
                "account_id": account["id"],
                "occurred_at": "2024-03-03T15:30:00+02:00",
            },
        )
    )
    at = correction["position"]

    def kinds(kind: str, record: dict[str, Any]) -> list[str]:
        return [i["kind"] for i in read(api, kind, record["id"], at)["items"]]

    assert kinds("contact", contact) == ["Interaction.Corrected", "Contact.Created"]
    assert kinds("contact", bob) == ["Interaction.Corrected", "Contact.Created", "note"]
    assert kinds("account", account) == ["Interaction.Corrected", "Account.Registered", "note"]
    moved = read(api, "account", account["id"], at, kinds="interaction")["items"]
    assert [(i["entity_id"], i["occurred_at"]) for i in moved] == [
        (logged["id"], "2024-03-03T13:30:00Z")
    ]
    change = read(api, "contact", contact["id"], at, kinds="Interaction.Corrected")["items"][0]
    assert change["summary"] == "Note corrected: occurred at, contacts, account"
    assert change["payload"]["changes"]["contact_ids"] == {
        "before": [contact["id"]],
        "after": [bob["id"]],
    }


def test_a_retracted_interaction_is_hidden_unless_asked_for(
    api: httpx.Client, contact: dict[str, Any]
) -> None:
    kept = note(api, 2, "Keep", contact_ids=[contact["id"]])
    wrong = note(api, 3, "Wrong contact", contact_ids=[contact["id"]])
    retraction = ok(
        api.post(f"/interactions/{wrong['id']}/retraction", json={"reason": "Wrong contact"})
    )
    at = retraction["position"]

    shown = read(api, "contact", contact["id"], at, kinds="interaction")["items"]
    assert [i["entity_id"] for i in shown] == [kept["id"]]

    everything = read(api, "contact", contact["id"], at, include_retracted="true")["items"]
    flagged = [(i["kind"], i["retracted"]) for i in everything if i["entity_id"] == wrong["id"]]
    assert flagged == [("Interaction.Retracted", True), ("note", True)]
    assert everything[0]["summary"] == "Note retracted: Wrong contact"


def test_pages_walk_the_whole_timeline_once_in_every_order(
    api: httpx.Client, contact: dict[str, Any]
) -> None:
    last = contact
    for n in range(9):
        last = note(api, 1 + (n * 7) % 11, f"Note {n}", contact_ids=[contact["id"]])
        if n % 3 == 0:
            last = ok(api.post(f"/contacts/{contact['id']}/tags", json={"tag": f"t{n}"}))
    expected_count = 1 + 9 + 3  # created, notes, tags

    for order in ("occurred", "logged"):
        for oldest_first in ("false", "true"):
            params = {"order": order, "oldest_first": oldest_first}
            whole = read(api, "contact", contact["id"], last["position"], **params)["items"]
            assert len(whole) == expected_count
            walked: list[dict[str, Any]] = []
            after: str | None = None
            pages = 0
            while True:
                page = read(
                    api,
                    "contact",
                    contact["id"],
                    last["position"],
                    limit=4,
                    **params,
                    **({"after": after} if after else {}),
                )
                walked += page["items"]
                pages += 1
                after = page["next"]
                if after is None:
                    break
            assert walked == whole  # none twice, none missing, same order
            assert pages == 4  # 13 entries by 4: no empty page at the end
            column = "occurred_at" if order == "occurred" else "recorded_at"
            keys = [(i[column], i["position"]) for i in whole]
            assert keys == sorted(keys, reverse=oldest_first == "false")


def test_a_deal_timeline_shows_its_stage_moves_and_tasks(api: httpx.Client) -> None:
    pipeline = created(
        api.post(
            "/pipelines",
            json={
                "name": "Sales",
                "stages": [{"name": "Lead", "probability": 10}, {"name": "Won", "probability": 90}],
            },
        )
    )
    deal = created(
        api.post(
            "/deals",
            json={
                "title": "Big",
                "amount": "10",
                "currency": "EUR",
                "pipeline_id": pipeline["id"],
            },
        )
    )
    ok(api.post(f"/deals/{deal['id']}/stage-changes", json={"stage": "Won"}))
    task = created(
        api.post(
            "/tasks", json={"title": "Call back", "linked_kind": "deal", "linked_id": deal["id"]}
        )
    )
    done = ok(api.post(f"/tasks/{task['id']}/completion"))

    items = read(api, "deal", deal["id"], done["position"], order="logged")["items"]

    assert [(i["kind"], i["summary"]) for i in items] == [
        ("Task.Completed", "Task completed: Call back"),
        ("Task.Created", "Task created: Call back"),
        ("Deal.StageChanged", "Moved from Lead to Won"),
        ("Deal.Opened", "Deal opened: Big, 10 EUR in Lead"),
    ]


def test_an_unknown_record_is_a_404_and_a_known_one_without_matches_an_empty_page(
    api: httpx.Client, contact: dict[str, Any]
) -> None:
    at = contact["position"]
    empty = read(api, "contact", contact["id"], at, kinds="call")
    assert empty == {"items": [], "next": None}

    for path in (
        "/timeline/contact/00000000-0000-4000-8000-000000000000",
        f"/timeline/deal/{contact['id']}",  # a contact is not a deal
    ):
        response = api.get(path, params={"min_position": at})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
        assert "min_position" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/timeline/task/{id}", {}),
        ("/timeline/interaction/{id}", {}),
        ("/timeline/contact/not-a-uuid", {}),
        ("/timeline/contact/{id}", {"order": "sideways"}),
        ("/timeline/contact/{id}", {"oldest_first": "perhaps"}),
        ("/timeline/contact/{id}", {"include_retracted": "maybe"}),
        ("/timeline/contact/{id}", {"kinds": "planet"}),
        ("/timeline/contact/{id}", {"kinds": "note,Deal.Exploded"}),
        ("/timeline/contact/{id}", {"kinds": ","}),
        ("/timeline/contact/{id}", {"kinds": ",".join(["note"] * 51)}),
        ("/timeline/contact/{id}", {"since": "yesterday"}),
        ("/timeline/contact/{id}", {"since": "2024-01-01T00:00:00"}),
        ("/timeline/contact/{id}", {"until": "2024-13-01T00:00:00Z"}),
        ("/timeline/contact/{id}", {"since": "0001-01-01T00:00:00+05:00"}),
        ("/timeline/contact/{id}", {"after": "abc"}),
        ("/timeline/contact/{id}", {"after": "x" * 2000}),
        ("/timeline/contact/{id}", {"after": encode_cursor(7)}),
        ("/timeline/contact/{id}", {"after": encode_cursor("occurred-desc", "soon", 3)}),
        ("/timeline/contact/{id}", {"after": encode_cursor("occurred-desc", "2024-01-01", 3)}),
        (
            "/timeline/contact/{id}",
            {"after": encode_cursor("occurred-desc", "2024-01-01T00:00:00Z", 2**63)},
        ),
        (
            "/timeline/contact/{id}",
            {"after": encode_cursor("occurred-desc", "2024-01-01T00:00:00Z", -1)},
        ),
        # A cursor made for another order or direction.
        (
            "/timeline/contact/{id}",
            {"after": encode_cursor("logged-desc", "2024-01-01T00:00:00Z", 3)},
        ),
        (
            "/timeline/contact/{id}",
            {
                "oldest_first": "true",
                "after": encode_cursor("occurred-desc", "2024-01-01T00:00:00Z", 3),
            },
        ),
        ("/timeline/contact/{id}", {"limit": "0"}),
        ("/timeline/contact/{id}", {"limit": "1001"}),
        ("/timeline/contact/{id}", {"min_position": "-1"}),
        ("/timeline/contact/{id}", {"min_position": "soon"}),
    ],
)
def test_bad_timeline_parameters_are_422_problems(
    api: httpx.Client, contact: dict[str, Any], path: str, params: dict[str, str]
) -> None:
    response = api.get(path.format(id=contact["id"]), params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


def test_a_cursor_of_this_order_is_accepted(api: httpx.Client, contact: dict[str, Any]) -> None:
    after = encode_cursor("occurred-desc", "2999-01-01T00:00:00+00:00", 2**62)
    page = read(api, "contact", contact["id"], contact["position"], after=after)
    assert [i["kind"] for i in page["items"]] == ["Contact.Created"]


def test_timelines_need_a_token(server: str, contact: dict[str, Any]) -> None:
    response = httpx.get(f"{server}/timeline/contact/{contact['id']}")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
