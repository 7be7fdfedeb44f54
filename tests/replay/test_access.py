"""Who could read or change a record at a moment, from the role-grant, token and
deactivation events: through the library, over real HTTP, and on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import httpx
import orjson
import pytest

from commands.accounts import ReassignAccount, RegisterAccount
from commands.app import Crm
from commands.handlers import execute
from commands.pipelines import CreatePipeline, StageSpec
from commands.roles import CreateCustomRole, EditCustomRole, GrantCustomRole, RevokeCustomRole
from commands.users import AssignManager, DeactivateUser, GrantRole, RevokeRole, RevokeToken
from domain.account import Account
from domain.custom_role import CustomRole
from domain.pipeline import Pipeline
from domain.roles import Role
from domain.user import User
from replay.access import AccessReport, access_as_of
from replay.records import RecordNotFoundError, recorded_at
from tests.conftest import Person, invite
from tests.replay.test_cli import cli_env, crm_cli  # noqa: F401  (cli_env: a fixture)


@dataclass
class Story:
    """An account and the people around it, with the moments between their changes."""

    account: UUID
    rep: Person
    manager: Person
    auditor: Person
    before_account: datetime
    start: datetime  # the account exists, owned by the rep; the rep is a Sales rep
    promoted: datetime  # the rep is also a Manager; the account moved to the manager
    demoted: datetime  # the rep is a Sales rep again; the manager's token is revoked
    gone: datetime  # the rep is deactivated


def moment_of(crm: Crm, user: Person | UUID, cls: type = User) -> datetime:
    """When the record's latest event was recorded."""
    record_id = user.user.id if isinstance(user, Person) else user
    return recorded_at(crm, record_id, crm.load(cls, record_id).version)


@pytest.fixture
def story(crm: Crm, owner: Person) -> Story:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, owner.user.authority)
    manager = invite(crm, "manager@example.com", Role.MANAGER, owner.user.authority)
    auditor = invite(crm, "auditor@example.com", Role.AUDITOR, owner.user.authority)
    before_account = moment_of(crm, auditor)
    account = execute(crm, RegisterAccount(name="Acme", owner_id=rep.user.id), owner.ctx).id
    start = moment_of(crm, account, Account)
    execute(crm, GrantRole(user_id=rep.user.id, role=Role.MANAGER), owner.ctx)
    execute(crm, ReassignAccount(account_id=account, owner_id=manager.user.id), owner.ctx)
    promoted = moment_of(crm, account, Account)
    execute(crm, RevokeRole(user_id=rep.user.id, role=Role.MANAGER), owner.ctx)
    (token,) = crm.load(User, manager.user.id).tokens
    execute(crm, RevokeToken(user_id=manager.user.id, token_id=UUID(token)), owner.ctx)
    demoted = moment_of(crm, manager)
    execute(crm, DeactivateUser(user_id=rep.user.id), owner.ctx)
    gone = moment_of(crm, rep)
    return Story(account, rep, manager, auditor, before_account, start, promoted, demoted, gone)


def by_email(report: AccessReport) -> dict[str, tuple[bool, bool, str | None]]:
    return {u.email: (u.could_read, u.could_change, u.reason) for u in report.users}


def test_access_follows_roles_tokens_and_deactivation(crm: Crm, story: Story) -> None:
    at_start = access_as_of(crm, Account, story.account, story.start)
    assert at_start.version == 1
    assert at_start.owner_id == story.rep.user.id
    assert [u.email for u in at_start.users if u.owner] == ["rep@example.com"]
    access = by_email(at_start)
    assert access["owner@example.com"] == (True, True, None)
    assert access["rep@example.com"] == (True, True, None)
    # By the permission table: a Manager edits their team's accounts (the rep is not in
    # it), an Auditor none; both read every account.
    assert access["manager@example.com"] == (
        True,
        False,
        "edit account: your roles reach only team records",
    )
    assert access["auditor@example.com"] == (
        True,
        False,
        "edit account: your roles reach no records",
    )

    promoted = access_as_of(crm, Account, story.account, story.promoted)
    rep = next(u for u in promoted.users if u.email == "rep@example.com")
    assert set(rep.roles) == {Role.SALES_REP, Role.MANAGER}
    assert promoted.owner_id == story.manager.user.id

    demoted = by_email(access_as_of(crm, Account, story.account, story.demoted))
    assert demoted["manager@example.com"] == (False, False, "held no token")
    # The account is the manager's now; a Sales rep changes only their own.
    assert demoted["rep@example.com"] == (
        True,
        False,
        "edit account: your roles reach only own records",
    )

    gone = by_email(access_as_of(crm, Account, story.account, story.gone))
    assert gone["rep@example.com"] == (False, False, "deactivated")
    assert gone["owner@example.com"] == (True, True, None)


def test_nobody_could_touch_a_record_before_it_existed(crm: Crm, story: Story) -> None:
    report = access_as_of(crm, Account, story.account, story.before_account)
    assert report.version is None
    assert report.users
    assert not any(u.could_read or u.could_change for u in report.users)
    assert {u.reason for u in report.users} == {"the record did not exist yet"}
    earlier = story.before_account - timedelta(days=365)
    assert access_as_of(crm, Account, story.account, earlier).users == []  # nobody yet


def test_pipelines_and_users_follow_their_own_rules(crm: Crm, owner: Person, story: Story) -> None:
    invite(crm, "lead@example.com", Role.SENIOR_MANAGER, owner.user.authority)
    invite(crm, "admin@example.com", Role.ADMIN, owner.user.authority)
    stages = [StageSpec(name="Lead", probability=10)]
    pipeline = execute(crm, CreatePipeline(name="Sales", stages=stages), owner.ctx).id
    now = moment_of(crm, pipeline, Pipeline)
    access = by_email(access_as_of(crm, Pipeline, pipeline, now))
    assert access["owner@example.com"] == (True, True, None)
    assert access["admin@example.com"] == (True, True, None)
    lead_reads, lead_changes, why = access["lead@example.com"]
    assert (lead_reads, lead_changes) == (True, False)
    assert why == "edit pipeline: your roles reach no records"

    manager = by_email(access_as_of(crm, User, story.manager.user.id, story.start))
    assert manager["owner@example.com"] == (True, True, None)
    assert manager["manager@example.com"][1] is False  # nobody manages themselves
    assert manager["rep@example.com"][1] is False  # a rep is below a manager


def test_an_unknown_record_is_not_found(crm: Crm, story: Story) -> None:
    with pytest.raises(RecordNotFoundError):
        access_as_of(crm, Account, UUID(int=1), story.gone)


# --- over HTTP -----------------------------------------------------------------------


def test_access_over_http_for_owners_and_auditors_only(
    api: httpx.Client, server: str, story: Story
) -> None:
    path = f"/access/account/{story.account}"
    response = api.get(path, params={"at": story.gone.isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 2
    users = {u["email"]: u for u in body["users"]}
    assert users["rep@example.com"]["reason"] == "deactivated"
    assert users["manager@example.com"]["owner"] is True

    with httpx.Client(base_url=server, timeout=30) as client:
        auditor = client.get(
            path,
            params={"at": story.gone.isoformat()},
            headers={"Authorization": f"Bearer {story.auditor.token}"},
        )
        assert auditor.status_code == 200
        assert auditor.json() == body
        rep = client.get(
            path,
            params={"at": story.start.isoformat()},
            headers={"Authorization": f"Bearer {story.manager.token}"},
        )
        assert rep.status_code == 401  # the manager's token was revoked
    for params, status in (
        ({}, 422),
        ({"at": "2026-09-30T12:00:00"}, 422),  # no time zone
        ({"at": "yesterday"}, 422),
    ):
        refused = api.get(path, params=params)
        assert refused.status_code == status, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    missing = api.get(f"/access/account/{UUID(int=7)}", params={"at": story.gone.isoformat()})
    assert missing.status_code == 404
    widget = api.get(f"/access/widget/{story.account}", params={"at": "2026-01-01T00:00Z"})
    assert widget.status_code == 422


def test_a_sales_rep_may_not_ask(crm: Crm, owner: Person, server: str, story: Story) -> None:
    rep = invite(crm, "rep2@example.com", Role.SALES_REP, owner.user.authority)
    with httpx.Client(base_url=server, timeout=30) as client:
        refused = client.get(
            f"/access/account/{story.account}",
            params={"at": story.gone.isoformat()},
            headers={"Authorization": f"Bearer {rep.token}"},
        )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


# --- on the command line -------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_crm_replay_access(story: Story) -> None:
    code, stdout, _ = crm_cli(
        "replay", "access", "account", str(story.account), "--at", story.gone.isoformat(), "--json"
    )
    assert code == 0
    users = {u["email"]: u for u in orjson.loads(stdout)["users"]}
    assert users["rep@example.com"]["reason"] == "deactivated"
    code, stdout, _ = crm_cli(
        "replay", "access", "account", str(story.account), "--at", story.start.isoformat()
    )
    assert code == 0
    assert "rep@example.com" in stdout
    assert "(owner)" in stdout
    code, _, stderr = crm_cli("replay", "access", "account", "nope", "--at", "2026-01-01")
    assert code == 1
    assert stderr.startswith("error:")
    assert len(stderr.strip().splitlines()) == 1


def test_a_manager_could_change_their_reports_records_while_they_reported(
    crm: Crm, owner: Person
) -> None:
    manager = invite(crm, "manager@example.com", Role.MANAGER, owner.user.authority)
    rep = invite(crm, "rep@example.com", Role.SALES_REP, owner.user.authority)
    account = execute(crm, RegisterAccount(name="Acme", owner_id=rep.user.id), owner.ctx).id
    execute(crm, AssignManager(user_id=rep.user.id, manager_id=manager.user.id), owner.ctx)
    reporting = moment_of(crm, rep)
    execute(crm, AssignManager(user_id=rep.user.id, manager_id=None), owner.ctx)
    apart = moment_of(crm, rep)

    assert by_email(access_as_of(crm, Account, account, reporting))["manager@example.com"] == (
        True,
        True,
        None,
    )
    assert by_email(access_as_of(crm, Account, account, apart))["manager@example.com"][:2] == (
        True,
        False,
    )


def test_a_custom_role_counts_while_it_was_held_with_the_grants_it_gave_then(
    crm: Crm, owner: Person
) -> None:
    rep = invite(crm, "rep@example.com", Role.SALES_REP, owner.user.authority)
    account = execute(crm, RegisterAccount(name="Acme", owner_id=owner.user.id), owner.ctx).id
    wide = {"account": {"read": "all", "edit": "all"}}
    keeper = CreateCustomRole.model_validate({"name": "Keeper", "level": 5, "grants": wide})
    role = execute(crm, keeper, owner.ctx).id
    execute(crm, GrantCustomRole(user_id=rep.user.id, role_id=role), owner.ctx)
    holding = moment_of(crm, rep)
    # An edit is the role's event, not the rep's: its moment is the role's.
    execute(crm, EditCustomRole.model_validate({"role_id": role, "grants": {}}), owner.ctx)
    narrowed = moment_of(crm, role, CustomRole)
    execute(crm, EditCustomRole.model_validate({"role_id": role, "grants": wide}), owner.ctx)
    widened = moment_of(crm, role, CustomRole)
    execute(crm, RevokeCustomRole(user_id=rep.user.id, role_id=role), owner.ctx)
    after = moment_of(crm, rep)

    def rep_reads_and_changes(moment: datetime) -> tuple[bool, bool]:
        could_read, could_change, _ = by_email(access_as_of(crm, Account, account, moment))[
            "rep@example.com"
        ]
        return could_read, could_change

    assert rep_reads_and_changes(holding) == (True, True)
    assert rep_reads_and_changes(narrowed) == (True, False)
    assert rep_reads_and_changes(widened) == (True, True)
    assert rep_reads_and_changes(after) == (True, False)
