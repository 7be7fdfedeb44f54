"""Writes are limited per user, all of their API tokens together (429 problem+json with
Retry-After, nothing written); reads are not; one user's limit leaves others alone. The
buckets' refill arithmetic is tested with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from api.deps import command_context
from api.ratelimit import RateLimitedError, TokenBuckets
from api.settings import Settings
from commands.app import Crm
from commands.handlers import execute
from commands.users import IssueToken
from domain.roles import Role
from tests.conftest import Person, invite
from tests.services import serving


@pytest.fixture
def limited(crm: Crm) -> Iterator[str]:
    settings = Settings(write_rate_per_second=0.5, write_burst=3)
    with serving(create_app(settings, crm=crm)) as base_url:
        yield base_url


def client(base_url: str, person: Person) -> httpx.Client:
    headers = {"Authorization": f"Bearer {person.token}"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def test_a_user_past_their_burst_gets_429_and_nothing_is_written(
    limited: str, crm: Crm, owner: Person
) -> None:
    other = invite(crm, "other@example.com", Role.ADMIN)
    with client(limited, owner) as api, client(limited, other) as second:
        for n in range(3):
            assert api.post("/accounts", json={"name": f"Burst {n}"}).status_code == 201
        head = crm.position()
        refused = api.post("/accounts", json={"name": "One too many"})
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/rate-limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert crm.position() == head  # the refused command wrote nothing
        # Reads are not limited; another user has their own bucket.
        assert api.get("/users/me").status_code == 200
        assert second.post("/accounts", json={"name": "Someone else"}).status_code == 201


def test_a_fresh_token_does_not_refill_its_users_allowance(
    limited: str, crm: Crm, owner: Person
) -> None:
    spare = execute(crm, IssueToken(user_id=owner.user.id, label="spare"), owner.ctx)
    second = Person(owner.user, spare.shown_once["token"])
    with client(limited, owner) as api, client(limited, second) as other_token:
        for n in range(3):
            assert api.post("/accounts", json={"name": f"Burst {n}"}).status_code == 201
        head = crm.position()
        refused = other_token.post("/accounts", json={"name": "Through another token"})
        assert refused.status_code == 429, refused.text
        assert crm.position() == head


def test_every_write_route_goes_through_the_limit() -> None:
    """Each route that changes something depends on command_context, where the limit
    is taken: a new write route without it would be unlimited."""

    def depends_on_context(route: APIRoute) -> bool:
        pending = list(route.dependant.dependencies)
        while pending:
            dependency = pending.pop()
            if dependency.call is command_context:
                return True
            pending.extend(dependency.dependencies)
        return False

    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            included = getattr(route, "original_router", None)  # FastAPI >= 0.16x
            if included is not None:
                yield from api_routes(included.routes)

    app = create_app(Settings())
    writes = [
        route
        for route in api_routes(app.routes)
        if (route.methods or set()) - {"GET", "HEAD", "OPTIONS"}
    ]
    assert len(writes) > 30  # the command routes, all of them found
    assert [r.path for r in writes if not depends_on_context(r)] == []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimitedError) as refused:
        buckets.take("a")
    assert refused.value.retry_after == 1  # half a second, rounded up
    buckets.take("b")  # another key has its own bucket
    clock.now += 0.5  # one command back
    buckets.take("a")
    with pytest.raises(RateLimitedError):
        buckets.take("a")
    clock.now += 60  # full again, never above the burst
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimitedError):
        buckets.take("a")


def test_rate_zero_turns_the_limit_off() -> None:
    buckets = TokenBuckets(rate=0, burst=1)
    for _ in range(100):
        buckets.take("a")
