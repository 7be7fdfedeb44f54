"""Fixtures: every store-backed test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from commands.app import Crm, store_env
from commands.context import Context
from commands.handlers import execute
from commands.users import InviteUser
from domain.roles import Authority, Role
from domain.user import User
from tests.services import StoreFactory, new_schema, serving, throwaway_database


@dataclass(frozen=True)
class Store:
    """How to open (and re-open, as after a restart) one test's event store."""

    kind: str
    env: dict[str, str]

    def open(self) -> Crm:
        return Crm(env=self.env)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", store_env(None, str(tmp_path / "events.sqlite")))
    database_url: str = request.getfixturevalue("postgres_database")
    schema = new_schema(database_url)
    return Store("postgres", store_env(f"{database_url}?schema={schema}", "", pool_size=20))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    """For hypothesis tests, whose examples cannot each get a function-scoped store."""
    kind: str = request.param
    return kind


@pytest.fixture
def empty_store(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of empty stores: every hypothesis example starts from nothing."""
    if store_kind == "sqlite":
        numbers = itertools.count()
        return lambda: store_env(None, str(tmp_path / f"events-{next(numbers)}.sqlite"))
    database_url: str = request.getfixturevalue("postgres_database")
    return lambda: store_env(f"{database_url}?schema={new_schema(database_url)}", "", 2)


@pytest.fixture
def crm(store: Store) -> Iterator[Crm]:
    app = store.open()
    yield app
    app.close()


@dataclass(frozen=True)
class Person:
    user: User
    token: str

    @property
    def ctx(self) -> Context:
        return Context(actor=self.user.authority, source="api")


def invite(crm: Crm, email: str, role: Role, by: Authority | None = None) -> Person:
    ctx = Context(actor=by or Authority.system(), source="cli")
    receipt = execute(crm, InviteUser(email=email, name=email.split("@")[0], role=role), ctx)
    return Person(crm.load(User, receipt.id), receipt.shown_once["token"])


@pytest.fixture
def owner(crm: Crm) -> Person:
    return invite(crm, "owner@example.com", Role.OWNER)


@pytest.fixture
def server(crm: Crm) -> Iterator[str]:
    with serving(create_app(Settings(), crm=crm)) as base_url:
        yield base_url


@pytest.fixture
def api(server: str, owner: Person) -> Iterator[httpx.Client]:
    """An HTTP client of the running server, authenticated as the Owner."""
    headers = {"Authorization": f"Bearer {owner.token}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        yield client
