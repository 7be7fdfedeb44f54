"""The command matrix, generated from the permission table (``domain/permissions.py``):
every role x every command governed by the table x a target record that is the actor's
own, their team's (owned by someone who reports to them, via ``PUT /users/{id}/manager``)
or someone else's -> allowed (2xx) or refused (403 problem+json, nothing written but the
record of the refusal), exactly as the table says. One server for the whole module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from commands import accounts, contacts, deals, interactions, pipelines, tasks
from commands.app import Crm, store_env
from commands.context import Context, Payload
from commands.handlers import PERMITS, execute
from domain.custom_role import parse_grants
from domain.permissions import may
from domain.roles import Authority, Role
from tests.api.test_auth import STAGES, written_since
from tests.api.test_bad_input import assert_problem
from tests.conftest import Person, invite
from tests.services import serving

RELATIONS = ("own", "team", "other")

#: The custom role of the matrix: scopes no built-in role has in this combination.
CUSTOM = "custom"
CUSTOM_GRANTS = {
    "account": {"read": "all", "create": "own", "edit": "team", "remove": "own"},
    "contact": {"read": "team", "create": "team", "edit": "own"},
    "deal": {"read": "team", "create": "own", "edit": "team", "remove": "own"},
    "interaction": {"read": "own", "create": "own", "edit": "team"},
    "task": {"read": "team", "create": "team", "edit": "own"},
    "pipeline": {"read": "all"},
}
#: Who acts in the matrix: a user of each built-in role, and one holding only the custom role.
PROFILES = [role.value for role in Role] + [CUSTOM]
NOW = datetime.now(UTC).isoformat()


@dataclass
class World:
    crm: Crm
    base_url: str
    owner: Person
    #: Per profile: the user acting, and a user who reports to them.
    subjects: dict[str, tuple[Person, UUID]]
    #: A user nobody in the matrix manages.
    stranger: UUID
    pipeline: UUID
    #: What interactions are linked to (every one is linked to something).
    account: UUID

    def make(self, command: Payload, as_user: UUID | None = None) -> UUID:
        """Run ``command`` in process, with the system's authority (as ``as_user``, so
        that an interaction is theirs); the id of the record it is about."""
        actor = Authority(user_id=as_user, is_system=True)
        return execute(self.crm, command, Context(actor=actor, source="cli")).id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("matrix") / "events.sqlite"
    crm = Crm(env=store_env(None, str(path)))
    owner = invite(crm, "first-owner@example.com", Role.OWNER)
    stranger = invite(crm, "stranger@example.com", Role.SALES_REP).user.id
    settings = Settings(write_rate_per_second=0)
    with serving(create_app(settings, crm=crm)) as base_url:
        headers = {"Authorization": f"Bearer {owner.token}"}
        subjects: dict[str, tuple[Person, UUID]] = {}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as api:
            role_spec = {"name": "Partner manager", "level": 15, "grants": CUSTOM_GRANTS}
            custom_role = api.post("/roles", json=role_spec)
            assert custom_role.status_code == 201, custom_role.text
            for profile in PROFILES:
                role = Role.SALES_REP if profile == CUSTOM else Role(profile)
                subject = invite(crm, f"{profile}@example.com", role)
                report = invite(crm, f"report-of-{profile}@example.com", Role.SALES_REP)
                line = api.put(
                    f"/users/{report.user.id}/manager", json={"manager_id": str(subject.user.id)}
                )
                assert line.status_code == 200, line.text
                if profile == CUSTOM:  # the custom role alone
                    user = f"/users/{subject.user.id}"
                    role_id = {"role_id": custom_role.json()["id"]}
                    assert api.post(f"{user}/custom-roles", json=role_id).status_code == 200
                    assert api.delete(f"{user}/roles/sales_rep").status_code == 200
                subjects[profile] = (subject, report.user.id)
        pipeline = execute(
            crm,
            pipelines.CreatePipeline.model_validate({"name": "Sales", "stages": STAGES}),
            system := Context(actor=Authority.system(), source="cli"),
        ).id
        account = execute(
            crm, accounts.RegisterAccount(name="Linked", owner_id=owner.user.id), system
        ).id
        yield World(crm, base_url, owner, subjects, stranger, pipeline, account)
    crm.close()


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str
    body: dict[str, Any] | None
    #: The owners whose records the command touches (None: a record nobody owns).
    owners: tuple[UUID | None, ...]


#: How to attempt a command on a record of ``owner`` while ``actor`` acts (who may be
#: handed a record of theirs, for a reassignment): the world, the record's owner, the
#: actor -> the request.
Case = Callable[[World, UUID, UUID], Attempt]


def account_of(w: World, owner: UUID) -> UUID:
    return w.make(accounts.RegisterAccount(name="Acme", owner_id=owner))


def contact_of(w: World, owner: UUID) -> UUID:
    return w.make(contacts.CreateContact(first_name="Ada", owner_id=owner))


def deal_of(w: World, owner: UUID) -> UUID:
    return w.make(
        deals.OpenDeal.model_validate(
            {
                "title": "Deal",
                "amount": "10",
                "currency": "EUR",
                "pipeline_id": w.pipeline,
                "owner_id": owner,
            }
        )
    )


def task_of(w: World, owner: UUID) -> UUID:
    return w.make(tasks.CreateTask(title="Call back", assignee_id=owner))


def note_of(w: World, owner: UUID) -> UUID:
    note = {"occurred_at": NOW, "body": "hi", "account_id": w.account}
    return w.make(interactions.LogNote.model_validate(note), owner)


def new_owner(owner: UUID, actor: UUID, w: World) -> UUID:
    """Whom a reassignment hands the record to: the actor, or if the record is theirs
    already, someone else (the stranger)."""
    return actor if owner != actor else w.stranger


def on(
    make: Callable[[World, UUID], UUID], method: str, suffix: str, body: dict[str, Any] | None
) -> Case:
    def case(w: World, owner: UUID, actor: UUID) -> Attempt:
        record = make(w, owner)
        return Attempt(method, suffix.format(id=record), body, (owner,))

    return case


def reassign(make: Callable[[World, UUID], UUID], path: str, field: str) -> Case:
    def case(w: World, owner: UUID, actor: UUID) -> Attempt:
        record, to = make(w, owner), new_owner(owner, actor, w)
        return Attempt("POST", path.format(id=record), {field: str(to)}, (owner, to))

    return case


def create(path: str, body: dict[str, Any], field: str | None = "owner_id") -> Case:
    def case(w: World, owner: UUID, actor: UUID) -> Attempt:
        links = {"<pipeline>": str(w.pipeline), "<account>": str(w.account)}
        given = {k: links.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
        if field is None:  # an interaction is the logger's own, whatever the relation
            return Attempt("POST", path, given, (actor,))
        return Attempt("POST", path, {**given, field: str(owner)}, (owner,))

    return case


def then(
    make: Callable[[World, UUID], UUID], step: Callable[[UUID], Payload]
) -> Callable[[World, UUID], UUID]:
    def made(w: World, owner: UUID) -> UUID:
        record = make(w, owner)
        w.make(step(record))
        return record

    return made


def pipeline_case(method: str, suffix: str, body: Callable[[World, UUID], Any]) -> Case:
    def case(w: World, owner: UUID, actor: UUID) -> Attempt:
        pipeline = w.make(pipelines.CreatePipeline.model_validate({"name": "P", "stages": STAGES}))
        return Attempt(method, suffix.format(id=pipeline), body(w, pipeline), (None,))

    return case


def stage_ids(w: World, pipeline: UUID) -> list[str]:
    from domain.pipeline import Pipeline

    return [str(stage.id) for stage in w.crm.load(Pipeline, pipeline).stages]


def change_stage(w: World, owner: UUID, actor: UUID) -> Attempt:
    pipeline = w.make(pipelines.CreatePipeline.model_validate({"name": "P", "stages": STAGES}))
    stage = stage_ids(w, pipeline)[0]
    return Attempt("PATCH", f"/pipelines/{pipeline}/stages/{stage}", {"name": "First"}, (None,))


NOTE = {"occurred_at": NOW, "account_id": "<account>", "body": "hello"}
CASES: dict[type[Payload], Case] = {
    accounts.RegisterAccount: create("/accounts", {"name": "New"}),
    accounts.UpdateAccount: on(account_of, "PATCH", "/accounts/{id}", {"name": "Renamed"}),
    accounts.ReassignAccount: reassign(account_of, "/accounts/{id}/owner", "owner_id"),
    accounts.MoveAccount: on(account_of, "POST", "/accounts/{id}/parent", {"parent_id": None}),
    accounts.ArchiveAccount: on(account_of, "POST", "/accounts/{id}/archive", None),
    accounts.RestoreAccount: on(
        then(account_of, lambda a: accounts.ArchiveAccount(account_id=a)),
        "POST",
        "/accounts/{id}/restore",
        None,
    ),
    accounts.RemoveAccount: on(account_of, "DELETE", "/accounts/{id}", None),
    contacts.CreateContact: create("/contacts", {"first_name": "Eve"}),
    contacts.UpdateContact: on(contact_of, "PATCH", "/contacts/{id}", {"first_name": "Eva"}),
    contacts.LinkContactToAccount: on(
        contact_of, "POST", "/contacts/{id}/account", {"account_id": None}
    ),
    contacts.ReassignContact: reassign(contact_of, "/contacts/{id}/owner", "owner_id"),
    contacts.TagContact: on(contact_of, "POST", "/contacts/{id}/tags", {"tag": "vip"}),
    contacts.UntagContact: on(
        then(contact_of, lambda c: contacts.TagContact(contact_id=c, tag="vip")),
        "DELETE",
        "/contacts/{id}/tags/vip",
        None,
    ),
    contacts.ChangeLifecycleStage: on(
        contact_of, "POST", "/contacts/{id}/lifecycle-stage", {"stage": "customer"}
    ),
    contacts.RemoveContact: on(contact_of, "DELETE", "/contacts/{id}", None),
    contacts.EraseContact: on(
        contact_of, "POST", "/contacts/{id}/erasure", {"basis": "consent-withdrawn"}
    ),
    deals.OpenDeal: create(
        "/deals", {"title": "T", "amount": "1", "currency": "EUR", "pipeline_id": "<pipeline>"}
    ),
    deals.MoveDeal: on(deal_of, "POST", "/deals/{id}/stage-changes", {"stage": "Won-ish"}),
    deals.UpdateDeal: on(deal_of, "PATCH", "/deals/{id}", {"title": "Bigger"}),
    deals.ReassignDeal: reassign(deal_of, "/deals/{id}/owner", "owner_id"),
    deals.WinDeal: on(deal_of, "POST", "/deals/{id}/won", {}),
    deals.LoseDeal: on(deal_of, "POST", "/deals/{id}/lost", {}),
    deals.ReopenDeal: on(
        then(deal_of, lambda d: deals.LoseDeal(deal_id=d)), "POST", "/deals/{id}/reopen", {}
    ),
    deals.RemoveDeal: on(deal_of, "DELETE", "/deals/{id}", None),
    interactions.LogCall: create(
        "/interactions/calls",
        {
            "occurred_at": NOW,
            "account_id": "<account>",
            "direction": "inbound",
            "duration_seconds": 5,
            "outcome": "busy",
        },
        None,
    ),
    interactions.LogEmail: create(
        "/interactions/emails",
        {"occurred_at": NOW, "account_id": "<account>", "direction": "outbound"},
        None,
    ),
    interactions.LogMeeting: create(
        "/interactions/meetings",
        {"occurred_at": NOW, "account_id": "<account>", "ends_at": NOW},
        None,
    ),
    interactions.LogNote: create("/interactions/notes", NOTE, None),
    interactions.LogSms: create(
        "/interactions/sms",
        {"occurred_at": NOW, "account_id": "<account>", "direction": "inbound", "body": "hi"},
        None,
    ),
    interactions.CorrectInteraction: on(
        note_of, "POST", "/interactions/{id}/corrections", {"body": "corrected"}
    ),
    interactions.RetractInteraction: on(
        note_of, "POST", "/interactions/{id}/retraction", {"reason": "wrong contact"}
    ),
    tasks.CreateTask: create("/tasks", {"title": "Follow up"}, "assignee_id"),
    tasks.UpdateTask: on(task_of, "PATCH", "/tasks/{id}", {"title": "Follow up now"}),
    tasks.AssignTask: reassign(task_of, "/tasks/{id}/assignee", "assignee_id"),
    tasks.CompleteTask: on(task_of, "POST", "/tasks/{id}/completion", None),
    tasks.ReopenTask: on(
        then(task_of, lambda t: tasks.CompleteTask(task_id=t)), "POST", "/tasks/{id}/reopen", None
    ),
    pipelines.CreatePipeline: pipeline_case(
        "POST", "/pipelines", lambda w, p: {"name": "Mine", "stages": STAGES}
    ),
    pipelines.RenamePipeline: pipeline_case("PATCH", "/pipelines/{id}", lambda w, p: {"name": "R"}),
    pipelines.AddStage: pipeline_case(
        "POST", "/pipelines/{id}/stages", lambda w, p: {"name": "New", "probability": 50}
    ),
    pipelines.ChangeStage: change_stage,
    pipelines.ReorderStages: pipeline_case(
        "POST", "/pipelines/{id}/stage-order", lambda w, p: {"stage_ids": stage_ids(w, p)[::-1]}
    ),
}

#: A pipeline is nobody's, a new interaction the logger's: one attempt per role, not three.
UNOWNED = {
    cls
    for cls, permit in PERMITS.items()
    if permit and (permit[0].value == "pipeline" or permit == interactions.LogNote.PERMIT)
}


def test_the_matrix_covers_every_command_the_table_governs() -> None:
    assert set(CASES) == {cls for cls, permit in PERMITS.items() if permit is not None}


def matrix() -> Iterator[Any]:
    for profile in PROFILES:
        for command in CASES:
            for relation in ("any",) if command in UNOWNED else RELATIONS:
                name = f"{profile}-{command.__name__}-{relation}"
                yield pytest.param(profile, command, relation, id=name)


def expected_authority(profile: str, actor: UUID, report: UUID) -> Authority:
    """What the table should see of the actor, built from the matrix's own setup (not
    from ``authority_of``, which is under test)."""
    team = frozenset({report})
    if profile == CUSTOM:
        return Authority(actor, team=team, custom_grants=(parse_grants(CUSTOM_GRANTS),))
    return Authority(actor, frozenset({Role(profile)}), team=team)


@pytest.mark.parametrize(("profile", "command", "relation"), list(matrix()))
def test_a_command_is_allowed_exactly_as_the_table_says(
    world: World, profile: str, command: type[Payload], relation: str
) -> None:
    subject, report = world.subjects[profile]
    actor = subject.user.id
    owner = {"own": actor, "team": report, "other": world.stranger, "any": actor}[relation]
    attempt = CASES[command](world, owner, actor)
    authority = expected_authority(profile, actor, report)
    permit = PERMITS[command]
    assert permit is not None
    allowed = all(may(authority, permit[0], permit[1], o) for o in attempt.owners)
    before = world.crm.position()

    headers = {"Authorization": f"Bearer {subject.token}"}
    with httpx.Client(base_url=world.base_url, headers=headers, timeout=30) as client:
        response = client.request(attempt.method, attempt.path, json=attempt.body)

    if allowed:
        assert response.is_success, response.text
    else:
        assert assert_problem(response, 403)["type"] == "/problems/forbidden", response.text
        assert written_since(world.crm, before) == []
