"""Optimistic concurrency over real HTTP: writers racing on one record never lose an
update and never write twice; the loser of a race gets a 409 and nothing is written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from uuid import UUID

import httpx
import pytest
from eventsourcing.utils import get_topic

from commands.app import Crm
from commands.context import Payload, Receipt
from commands.deals import OpenDeal
from commands.errors import ConflictError
from commands.handlers import HANDLERS, execute
from commands.pipelines import CreatePipeline, StageSpec
from commands.roles import CreateCustomRole, EditCustomRole, GrantCustomRole, RetireCustomRole
from domain.contact import Contact
from domain.custom_role import CustomRole
from domain.deal import Deal
from domain.index import UniqueKey
from domain.pipeline import Pipeline
from domain.roles import Role
from domain.user import User
from tests.conftest import Person, invite

WRITERS = 12

Send = Callable[[httpx.Client, int], httpx.Response]


def race(base_url: str, token: str, send: Send, writers: int = WRITERS) -> list[httpx.Response]:
    """Lets ``writers`` threads, each on its own warmed-up connection, send at once."""
    start = threading.Barrier(writers)

    def writer(index: int) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            client.get("/health").raise_for_status()
            start.wait(timeout=30)
            return send(client, index)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        return list(pool.map(writer, range(writers)))


def stage_name(index: int) -> str:
    return f"Stage {index}"


def open_deal(crm: Crm, owner: Person, stages: int = WRITERS + 1) -> Receipt:
    """A deal in the first stage of a pipeline with a stage for every writer to move to."""
    pipeline = execute(
        crm,
        CreatePipeline(
            name="Sales",
            stages=[StageSpec(name=stage_name(i), probability=i) for i in range(stages)],
        ),
        owner.ctx,
    )
    command = OpenDeal(
        title="Fleet renewal", amount=Decimal("1000.00"), currency="EUR", pipeline_id=pipeline.id
    )
    return execute(crm, command, owner.ctx)


def move_to_own_stage(deal_id: UUID, if_match: int | None) -> Send:
    def send(client: httpx.Client, index: int) -> httpx.Response:
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        body = {"stage": stage_name(index + 1)}
        return client.post(f"/deals/{deal_id}/stage-changes", json=body, headers=headers)

    return send


def own_amount(index: int) -> str:
    return f"{2000 + index}.50"


def change_to_own_amount(deal_id: UUID, if_match: int | None) -> Send:
    def send(client: httpx.Client, index: int) -> httpx.Response:
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        return client.patch(
            f"/deals/{deal_id}", json={"amount": own_amount(index)}, headers=headers
        )

    return send


def assert_conflict(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 409
    assert problem["type"] == "/problems/conflict"


def new_notifications(crm: Crm, after: int) -> list[tuple[UUID, int, str]]:
    """(originator id, version, topic) of every event stored after position ``after``."""
    return [
        (UUID(str(n.originator_id)), n.originator_version, n.topic)
        for n in crm.recorder.select_notifications(start=after + 1, limit=10_000)
    ]


@pytest.mark.parametrize(
    ("change", "event_class"),
    [(move_to_own_stage, Deal.StageChanged), (change_to_own_amount, Deal.AmountChanged)],
    ids=["stage-move", "amount-change"],
)
def test_of_writers_sending_the_same_if_match_exactly_one_wins_and_the_rest_get_409(
    crm: Crm,
    owner: Person,
    server: str,
    change: Callable[[UUID, int | None], Send],
    event_class: type[Deal.Event],
) -> None:
    deal_id = open_deal(crm, owner).id
    version: int = crm.repository.get(deal_id).version
    position = crm.position()

    responses = race(server, owner.token, change(deal_id, version))

    winners = [i for i, r in enumerate(responses) if r.is_success]
    assert len(winners) == 1, [r.status_code for r in responses]
    (winner,) = winners
    for index, response in enumerate(responses):
        if index != winner:
            assert_conflict(response)
    assert responses[winner].json()["version"] == version + 1
    assert responses[winner].headers["ETag"] == f'"{version + 1}"'

    deal = crm.load(Deal, deal_id)
    assert deal.version == version + 1
    assert len(list(crm.events.get(deal_id))) == version + 1
    if event_class is Deal.StageChanged:
        pipeline = crm.load(Pipeline, deal.pipeline_id)
        assert deal.stage_id == pipeline.find_stage(stage_name(winner + 1)).id
    else:
        assert str(deal.amount) == own_amount(winner)
    assert new_notifications(crm, position) == [(deal_id, version + 1, get_topic(event_class))]


def test_writers_without_if_match_never_lose_an_update(
    crm: Crm, owner: Person, server: str
) -> None:
    deal_id = open_deal(crm, owner).id
    version: int = crm.repository.get(deal_id).version
    position = crm.position()

    responses = race(server, owner.token, change_to_own_amount(deal_id, None))

    succeeded = {i: r.json()["version"] for i, r in enumerate(responses) if r.is_success}
    for index, response in enumerate(responses):
        if index not in succeeded:
            assert_conflict(response)
    assert succeeded, "at least the first writer to commit succeeds"
    assert sorted(succeeded.values()) == list(range(version + 1, version + 1 + len(succeeded)))

    events = list(crm.events.get(deal_id, gt=version))
    changes = [e for e in events if isinstance(e, Deal.AmountChanged)]
    assert changes == events, "only amount changes"
    assert [e.originator_version for e in changes] == sorted(succeeded.values())
    by_version = {v: own_amount(i) for i, v in succeeded.items()}
    assert [str(e.amount) for e in changes] == [by_version[e.originator_version] for e in changes]
    # No lost update: every change was decided on the state the one before it left.
    previous = Decimal("1000.00")
    for change in changes:
        assert change.previous_amount == previous
        previous = change.amount
    assert crm.load(Deal, deal_id).amount == previous
    # Positions may skip numbers (PostgreSQL spends a sequence value on a failed insert),
    # so count the stored events rather than subtracting positions.
    stored = new_notifications(crm, position)
    assert [(n[0], n[1]) for n in stored] == [(deal_id, v) for v in sorted(succeeded.values())]


def test_of_many_contacts_created_at_once_with_one_email_exactly_one_is_stored(
    crm: Crm, owner: Person, server: str
) -> None:
    spellings = ["ada@example.com", "Ada@Example.com", "ADA@EXAMPLE.COM", " ada@example.com "]
    position = crm.position()

    def send(client: httpx.Client, index: int) -> httpx.Response:
        body = {"first_name": f"Ada {index}", "emails": [spellings[index % len(spellings)]]}
        return client.post("/contacts", json=body)

    responses = race(server, owner.token, send)

    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert_conflict_or_rule(response)
    contact_id = UUID(created[0].json()["id"])
    stored = new_notifications(crm, position)
    contacts = [n for n in stored if n[2] == get_topic(Contact.Created)]
    assert [n[0] for n in contacts] == [contact_id]
    key = crm.load(UniqueKey, crm.email_key_id("ada@example.com"))
    assert key.holder_id == contact_id
    assert crm.load(Contact, contact_id).emails == ["ada@example.com"]
    assert len(stored) == 2, "the contact and its e-mail key, nothing else"


def assert_conflict_or_rule(response: httpx.Response) -> None:
    """A loser either collided in the store or found the address already taken: 409 both."""
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] in ("/problems/conflict", "/problems/rule-violation")


@pytest.mark.parametrize("rival", ["retire", "edit"])
def test_a_grant_decided_alongside_a_retirement_or_an_edit_of_its_role_does_not_commit_too(
    crm: Crm, owner: Person, rival: str
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP)
    spec = {"name": "Helper", "level": 5, "grants": {"deal": {"read": "own"}}}
    role_id = execute(crm, CreateCustomRole.model_validate(spec), owner.ctx).id
    change: Payload = (
        RetireCustomRole(role_id=role_id)
        if rival == "retire"
        else EditCustomRole(role_id=role_id, level=8)
    )

    # Both decided on the same state, as two racing requests would; the first one saves.
    first = HANDLERS[type(change)](change, crm, owner.ctx)
    grant = GrantCustomRole(user_id=rep.user.id, role_id=role_id)
    second = HANDLERS[GrantCustomRole](grant, crm, owner.ctx)
    crm.save_with(owner.ctx.meta, first.target, *first.others)
    with pytest.raises(ConflictError):
        crm.save_with(owner.ctx.meta, second.target, *second.others)

    assert crm.load(User, rep.user.id).custom_roles == {}
    role = crm.load(CustomRole, role_id)
    assert (role.retired, role.level, role.holder_ids) == (
        rival == "retire",
        5 if rival == "retire" else 8,
        [],
    )
