"""The CRM's data and traffic for benchmarks: fixtures created over HTTP (reps, a
pipeline, accounts, contacts, deals) and workloads of requests drawn from them.

The command mix, by weight: log a call 4, move a deal to another stage 3, create a
contact (unique e-mail) 2, register an account 1. Moves pick a deal at random, so
concurrent writers to one deal are rare with many deals; the workload remembers each
deal's stage as last seen, so a move always names another stage.

Sales reps reach only their own records (and read their team's), so every record a
request names belongs to the rep who sends it: fixture ``i`` is created by rep
``i % users``, and its links point at records of that same rep.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.progress import Progress

from bench.load import Clients, Request, send_all

COMMANDS = ("log-call", "move-deal", "create-contact", "register-account")
MIX_WEIGHTS = {"log-call": 4, "move-deal": 3, "create-contact": 2, "register-account": 1}
STAGES = (("Qualified", 20), ("Proposal", 50), ("Negotiation", 75), ("Commit", 90))


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Fixtures:
    owner_token: str
    rep_tokens: list[str]
    pipeline_id: str
    account_ids: list[str]
    contact_ids: list[str]
    deal_ids: list[str]


def _post(path: str, body: dict[str, Any], token: str, label: str = "setup") -> Request:
    return Request(label, "POST", path, json.dumps(body).encode(), token)


def _ids(replies: Sequence[Any], key: str = "id") -> list[str]:
    return [str(json.loads(reply.body)[key]) for reply in replies]


async def create_fixtures(
    clients: Clients,
    owner: str,
    tag: str,
    *,
    users: int,
    accounts: int,
    contacts: int,
    deals: int,
    bar: Progress | None = None,
) -> Fixtures:
    """Over HTTP, as the Owner (token ``owner``): ``users`` sales reps with their tokens
    and a pipeline; as the reps in turn: accounts, contacts (one per account in turn,
    unique e-mails with ``tag``) and deals (each with an account and a contact)."""
    invitations = [
        _post(
            "/users",
            {"email": f"rep{i}.{tag}@bench.example", "name": f"Rep {i}", "role": "sales_rep"},
            owner,
        )
        for i in range(users)
    ]
    invited = await send_all(clients, invitations, 4)
    reps = [str(json.loads(reply.body)["shown_once"]["token"]) for reply in invited]
    stages = [{"name": name, "probability": p} for name, p in STAGES]
    pipeline = _post("/pipelines", {"name": f"Bench {tag}", "stages": stages}, owner)
    (pipeline_id,) = _ids(await send_all(clients, [pipeline], 1))

    # Every rep owns at least one record of each kind.
    n_accounts, n_contacts, n_deals = (max(users, n) for n in (accounts, contacts, deals))
    total = n_accounts + n_contacts + n_deals
    task = bar.add_task("fixtures", total=total, note="") if bar is not None else None
    base = 0

    def advance(done: int) -> None:
        if bar is not None and task is not None:
            bar.update(task, completed=base + done)

    def rep(i: int) -> str:
        return reps[i % len(reps)]

    def same_rep(i: int, n: int) -> int:
        """An index below ``n`` created by the same rep as fixture ``i``."""
        return owned(i % len(reps), i // len(reps), n, len(reps))

    new_accounts = [
        _post("/accounts", {"name": f"Fixture account {i}", "country": "DE"}, rep(i))
        for i in range(n_accounts)
    ]
    account_ids = _ids(await send_all(clients, new_accounts, 8, advance))
    base += n_accounts
    new_contacts = [
        _post(
            "/contacts",
            {
                "first_name": "Fixture",
                "last_name": f"Contact {i}",
                "emails": [f"fixture{i}.{tag}@bench.example"],
                "account_id": account_ids[same_rep(i, n_accounts)],
            },
            rep(i),
        )
        for i in range(n_contacts)
    ]
    contact_ids = _ids(await send_all(clients, new_contacts, 8, advance))
    base += n_contacts
    new_deals = [
        _post(
            "/deals",
            {
                "title": f"Fixture deal {i}",
                "amount": f"{1000 + i}.00",
                "currency": "EUR",
                "pipeline_id": pipeline_id,
                "account_id": account_ids[same_rep(i, n_accounts)],
                "contact_ids": [contact_ids[same_rep(i, n_contacts)]],
            },
            rep(i),
        )
        for i in range(n_deals)
    ]
    deal_ids = _ids(await send_all(clients, new_deals, 8, advance))
    if bar is not None and task is not None:
        bar.remove_task(task)
    return Fixtures(owner, reps, pipeline_id, account_ids, contact_ids, deal_ids)


def owned(rep: int, k: int, n: int, reps: int) -> int:
    """The ``k``-th index below ``n`` (cycling) among those created by rep ``rep``: the
    indices ``rep``, ``rep + reps``, ``rep + 2 * reps`` … (``n >= reps``)."""
    count = (n - rep + reps - 1) // reps
    return rep + reps * (k % count)


# ---------------------------------------------------------------- workloads


class World:
    """What the workloads of one server share: fixtures, a serial number for unique
    names and e-mails, and each deal's stage as last seen."""

    def __init__(self, fixtures: Fixtures, tag: str, seed: int) -> None:
        self.fixtures = fixtures
        self.tag = tag
        self.rng = random.Random(seed)
        self.serial = itertools.count()
        self.deal_stage = [0] * len(fixtures.deal_ids)
        self.occurred_at = datetime.now(UTC).replace(microsecond=0).isoformat()

    def pick(self, rep: int, n: int) -> int:
        """A random index below ``n`` among the records created by rep ``rep``."""
        reps = len(self.fixtures.rep_tokens)
        return owned(rep, self.rng.randrange(n), n, reps)


class Single:
    """One request, again and again (``health``, ``me``)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def next(self, worker: int) -> Request:
        return self.request


class CommandMix:
    """Commands drawn at random by weight, each sent as worker ``i``'s rep."""

    def __init__(self, world: World, weights: dict[str, int]) -> None:
        self.world = world
        self.labels = [label for label, weight in weights.items() for _ in range(weight)]
        self.build: dict[str, Callable[[int], Request]] = {
            "register-account": self.register_account,
            "create-contact": self.create_contact,
            "log-call": self.log_call,
            "move-deal": self.move_deal,
        }

    def next(self, worker: int) -> Request:
        rep = worker % len(self.world.fixtures.rep_tokens)
        return self.build[self.world.rng.choice(self.labels)](rep)

    def token(self, rep: int) -> str:
        return self.world.fixtures.rep_tokens[rep]

    def register_account(self, rep: int) -> Request:
        n = next(self.world.serial)
        body = {
            "name": f"Bench account {n}",
            "website": f"a{n}.bench.example",
            "industry": "Software",
            "country": "DE",
        }
        return _post("/accounts", body, self.token(rep), "register-account")

    def create_contact(self, rep: int) -> Request:
        world, n = self.world, next(self.world.serial)
        accounts = world.fixtures.account_ids
        body = {
            "first_name": "Bench",
            "last_name": f"Contact {n}",
            "emails": [f"c{n}.{world.tag}@bench.example"],
            "job_title": "Buyer",
            "account_id": accounts[world.pick(rep, len(accounts))],
            "tags": ["bench"],
        }
        return _post("/contacts", body, self.token(rep), "create-contact")

    def log_call(self, rep: int) -> Request:
        world = self.world
        contacts, deals = world.fixtures.contact_ids, world.fixtures.deal_ids
        body = {
            "occurred_at": world.occurred_at,
            "direction": "outbound",
            "duration_seconds": world.rng.randint(30, 1800),
            "outcome": "connected",
            "notes": "Walked through the proposal",
            "contact_ids": [contacts[world.pick(rep, len(contacts))]],
            "deal_id": deals[world.pick(rep, len(deals))],
        }
        return _post("/interactions/calls", body, self.token(rep), "log-call")

    def move_deal(self, rep: int) -> Request:
        world = self.world
        deal = world.pick(rep, len(world.fixtures.deal_ids))
        stage = (world.deal_stage[deal] + world.rng.randrange(1, len(STAGES))) % len(STAGES)

        def moved(_: bytes) -> None:
            world.deal_stage[deal] = stage

        path = f"/deals/{world.fixtures.deal_ids[deal]}/stage-changes"
        body = json.dumps({"stage": STAGES[stage][0]}).encode()
        return Request("move-deal", "POST", path, body, self.token(rep), on_success=moved)
