"""Idempotency over real HTTP: a command retried with the same Idempotency-Key, even by
many clients at once or after a restart, is carried out once and answered with its
first receipt; keys belong to the user who sent them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from eventsourcing.utils import get_topic

from api.app import create_app
from api.settings import Settings
from commands.app import Crm
from commands.deals import OpenDeal
from commands.handlers import execute
from commands.idempotency import IdempotencyRecord, record_id
from commands.pipelines import CreatePipeline, StageSpec
from commands.users import USER_EMAIL_SCOPE
from domain.account import Account
from domain.deal import Deal
from domain.index import UniqueKey
from domain.roles import Role
from domain.user import User
from domain.values import key_id
from tests.conftest import Person, Store, invite
from tests.services import serving

RETRIES = 8

Stored = list[tuple[UUID, str]]


@dataclass(frozen=True)
class Request:
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """A command sent over HTTP, and the events that carrying it out once stores."""

    prepare: Callable[[Crm, Person], Request]
    expected: Callable[[UUID], Stored]


def register_account(crm: Crm, owner: Person) -> Request:
    return Request("/accounts", {"name": "Acme GmbH", "country": "DE"})


def move_deal(crm: Crm, owner: Person) -> Request:
    pipeline = execute(
        crm,
        CreatePipeline(
            name="Sales",
            stages=[StageSpec(name="Lead", probability=10), StageSpec(name="Won", probability=90)],
        ),
        owner.ctx,
    )
    deal = execute(
        crm,
        OpenDeal(title="Renewal", amount=Decimal("10"), currency="EUR", pipeline_id=pipeline.id),
        owner.ctx,
    )
    return Request(f"/deals/{deal.id}/stage-changes", {"stage": "Won"})


NEW_USER = "new.rep@example.com"


def invite_user(crm: Crm, owner: Person) -> Request:
    return Request("/users", {"email": NEW_USER, "name": "New Rep", "role": "sales_rep"})


CASES = {
    "register-account": Case(
        register_account, lambda target: [(target, get_topic(Account.Registered))]
    ),
    "move-deal": Case(move_deal, lambda target: [(target, get_topic(Deal.StageChanged))]),
    "invite-user": Case(
        invite_user,
        lambda target: [
            (target, get_topic(User.Invited)),
            (target, get_topic(User.RoleGranted)),
            (target, get_topic(User.TokenIssued)),
            (key_id(USER_EMAIL_SCOPE, NEW_USER), get_topic(UniqueKey.Claimed)),
        ],
    ),
}


def stored_after(crm: Crm, position: int) -> Stored:
    """(originator id, topic) of every event stored after ``position``, in order."""
    return [
        (UUID(str(n.originator_id)), n.topic)
        for n in crm.recorder.select_notifications(start=position + 1, limit=10_000)
    ]


def all_stored_state(crm: Crm) -> bytes:
    return b"\n".join(n.state for n in crm.recorder.select_notifications(start=1, limit=100_000))


def secret_of(token: str) -> str:
    """The random part of ``crm_<user id>_<token id>_<secret>`` (the secret may hold ``_``)."""
    secret = token.split("_", 3)[3]
    assert len(secret) == 43
    return secret


def send_at_once(
    base_url: str, token: str, request: Request, key: str, senders: int = RETRIES
) -> list[httpx.Response]:
    """The same request with the same key from ``senders`` threads released together."""
    start = threading.Barrier(senders)

    def sender(_: int) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            client.get("/health").raise_for_status()
            start.wait(timeout=30)
            return client.post(request.path, json=request.body)

    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(sender, range(senders)))


@contextmanager
def restarted(crm: Crm, store: Store, token: str) -> Iterator[tuple[Crm, httpx.Client]]:
    """Close the application, open a new one on the same store and serve a new app."""
    crm.close()
    reopened = store.open()
    try:
        with (
            serving(create_app(Settings(), crm=reopened)) as base_url,
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client,
        ):
            yield reopened, client
    finally:
        reopened.close()


def without_replay_marks(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k not in ("replayed", "position", "shown_once")}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_command_sent_at_once_with_one_key_is_carried_out_once_even_after_a_restart(
    crm: Crm, store: Store, owner: Person, server: str, case: Case
) -> None:
    request = case.prepare(crm, owner)
    key = f"retry-{request.path}"
    position = crm.position()

    responses = send_at_once(server, owner.token, request, key)

    assert all(r.is_success for r in responses), [(r.status_code, r.text) for r in responses]
    assert len({r.status_code for r in responses}) == 1
    replies = [r.json() for r in responses]
    first = without_replay_marks(replies[0])
    assert all(without_replay_marks(reply) == first for reply in replies)
    assert sorted(reply["replayed"] for reply in replies) == [False] + [True] * (RETRIES - 1)
    for response, reply in zip(responses, replies, strict=True):
        assert (response.headers.get("Idempotent-Replayed") == "true") is reply["replayed"]
        assert response.headers["ETag"] == f'"{reply["version"]}"'
    target = UUID(first["id"])
    record = (record_id(owner.user.id.hex, key), get_topic(IdempotencyRecord.Recorded))
    assert sorted(stored_after(crm, position)) == sorted([*case.expected(target), record])

    events_before_restart = stored_after(crm, 0)
    with restarted(crm, store, owner.token) as (reopened, client):
        again = client.post(request.path, json=request.body, headers={"Idempotency-Key": key})

        assert again.status_code == responses[0].status_code, again.text
        assert again.json()["replayed"] is True
        assert without_replay_marks(again.json()) == first
        assert stored_after(reopened, 0) == events_before_restart


def test_an_invitation_retried_with_its_key_never_shows_the_token_again(
    crm: Crm, store: Store, owner: Person, server: str
) -> None:
    request = invite_user(crm, owner)

    responses = send_at_once(server, owner.token, request, "invite-new-rep", senders=6)

    first = [r.json() for r in responses if not r.json()["replayed"]]
    replays = [r.json() for r in responses if r.json()["replayed"]]
    assert len(first) == 1
    assert len(replays) == 5
    token = first[0]["shown_once"]["token"]
    assert all(reply["shown_once"] == {} for reply in replays)
    assert sum(token in response.text for response in responses) == 1
    me = httpx.get(f"{server}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == first[0]["id"]

    stored = all_stored_state(crm)
    for plaintext in (token, secret_of(token), owner.token, secret_of(owner.token)):
        assert plaintext.encode() not in stored

    with restarted(crm, store, owner.token) as (reopened, client):
        again = client.post(
            request.path, json=request.body, headers={"Idempotency-Key": "invite-new-rep"}
        )

        assert again.json()["replayed"] is True
        assert again.json()["shown_once"] == {}
        assert again.json()["created"] == first[0]["created"]
        assert token.encode() not in all_stored_state(reopened)


def test_the_same_key_with_a_different_request_is_refused_and_writes_nothing(
    crm: Crm, owner: Person, api: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "acme-once"}
    created = api.post("/accounts", json={"name": "Acme"}, headers=headers)
    assert created.status_code == 201
    position = crm.position()

    reused = api.post("/accounts", json={"name": "Globex"}, headers=headers)
    elsewhere = api.post("/contacts", json={"first_name": "Ada"}, headers=headers)

    for response in (reused, elsewhere):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert stored_after(crm, position) == []
    replay = api.post("/accounts", json={"name": "Acme"}, headers=headers)
    assert replay.json()["id"] == created.json()["id"]
    assert replay.json()["replayed"] is True


def test_a_key_belongs_to_its_user_so_another_user_with_the_same_key_gets_their_own_command(
    crm: Crm, owner: Person, api: httpx.Client
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, by=owner.user.authority)
    headers = {"Idempotency-Key": "shared-key"}
    body = {"name": "Acme"}

    by_owner = api.post("/accounts", json=body, headers=headers)
    position = crm.position()
    by_rep = api.post(
        "/accounts", json=body, headers={**headers, "Authorization": f"Bearer {rep.token}"}
    )

    assert by_owner.status_code == by_rep.status_code == 201
    assert by_rep.json()["replayed"] is False
    rep_account = UUID(by_rep.json()["id"])
    assert rep_account != UUID(by_owner.json()["id"])
    assert crm.load(Account, rep_account).owner_id == rep.user.id
    assert sorted(stored_after(crm, position)) == sorted(
        [
            (rep_account, get_topic(Account.Registered)),
            (record_id(rep.user.id.hex, "shared-key"), get_topic(IdempotencyRecord.Recorded)),
        ]
    )
    again = api.post("/accounts", json=body, headers=headers)
    assert again.json()["id"] == by_owner.json()["id"]
    assert again.json()["replayed"] is True
