"""Random command sequences through the real write side keep every invariant.

A hypothesis state machine sends commands through ``commands.handlers.execute`` on a
fresh event store per example, on SQLite and on PostgreSQL. It keeps a small model of
the CRM to know which commands must be carried out and which refused (a refused
command writes nothing), and after every step it checks that

- every aggregate the step saved, reloaded by another application on the same store,
  equals the one the write side holds in memory, and its stored versions run 1..n;
- the model, the aggregates in memory and the CRM's invariants agree: no account is its
  own ancestor, an e-mail belongs to at most one contact and the index says so (an
  erased contact frees its addresses, and every later command naming it is refused), every
  deal sits in a stage of its pipeline, probabilities lie in 0..100, the Owner roster
  is exactly the active Owners and never empty, nobody holds a role twice.

At the end a brand-new application re-reads the whole store and checks it all again,
along with the global order of events.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Recording
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from commands.accounts import ArchiveAccount, MoveAccount, RegisterAccount, RestoreAccount
from commands.app import Crm
from commands.contacts import CreateContact, EraseContact, UpdateContact
from commands.context import Context, Payload, Receipt
from commands.deals import LoseDeal, MoveDeal, OpenDeal, ReopenDeal, UpdateDeal, WinDeal
from commands.errors import CommandError
from commands.handlers import PERMITS, execute
from commands.interactions import (
    CorrectInteraction,
    LogCall,
    LogEmail,
    LogInteraction,
    LogMeeting,
    LogNote,
    LogSms,
    RetractInteraction,
)
from commands.persistence import Meta
from commands.pipelines import AddStage, ChangeStage, CreatePipeline, StageSpec
from commands.tasks import CompleteTask, CreateTask, ReopenTask
from commands.users import USER_EMAIL_SCOPE, DeactivateUser, GrantRole, InviteUser, RevokeRole
from domain.account import Account, AccountArchivedError, AccountError, Hierarchy
from domain.account import AccountHierarchyCycleError as CycleError
from domain.account import hierarchy_id as the_hierarchy
from domain.contact import (
    EMAIL_SCOPE,
    Contact,
    ContactErasedError,
    ErasureBasis,
    email_key_id,
)
from domain.deal import Deal, DealClosedError, DealNotClosedError, DealStatus
from domain.errors import DomainError, InvalidValueError, NotPermittedError
from domain.index import KeyTakenError, UniqueKey
from domain.interaction import (
    CLOCK_SKEW,
    COMMON_FIELDS,
    DETAIL_FIELDS,
    CallOutcome,
    Interaction,
    InteractionKind,
    InteractionRetractedError,
)
from domain.ownership import owner_of, ownership_of
from domain.permissions import Action, DeniedError, Resource, may
from domain.pipeline import DuplicateStageNameError, Pipeline, UnknownStageError
from domain.roles import Authority, EscalationError, ReadOnlyError, Role, SelfRoleChangeError
from domain.task import RecordKind, Task, TaskCompletedError, TaskNotCompletedError
from domain.user import (
    LastOwnerError,
    OwnerRoster,
    RoleAlreadyHeldError,
    RoleNotHeldError,
    User,
    UserDeactivatedError,
)
from domain.values import Direction, key_id
from tests.services import StoreFactory

A = TypeVar("A", bound=Aggregate)

SYSTEM = -1
#: Who acts: -1 is the system authority (the operator at the command line), n the
#: n-th active user in order of invitation (wrapping around).
#: Fields of a command's body that link it to other records (which the actor must be
#: allowed to read).
LINK_FIELDS = {"contact_ids", "account_id", "deal_id", "parent_id", "linked_id"}
ACTORS = st.sampled_from([SYSTEM, 0, 1, 2, 3, 4, 5])
USER_EMAILS = st.sampled_from(
    ["ann@example.com", "Ann@Example.COM", "ben@example.org", "cleo@example.net", "dev@example.io"]
)
CONTACT_EMAILS = st.lists(
    st.sampled_from(["kim@example.com", "KIM@example.com", "lee@example.org", "max@example.net"]),
    max_size=2,
)
COUNTRIES = st.sampled_from([None, "DE", "FR", "de"])
STAGE_NAMES = st.sampled_from(["Lead", "Qualified", "Proposal", "Negotiation", "Won", "lead"])
PROBABILITIES = st.integers(min_value=0, max_value=100)
#: Mostly valid; a negative amount, too many decimals, too large, an unknown currency.
AMOUNTS = st.sampled_from(
    ["0", "1250.50", "99999.9999", "42", "7.5", "250000", "-5", "0.00001", "1E+15"]
).map(Decimal)
VALID_CURRENCIES = frozenset({"EUR", "USD", "JPY", "GBP"})
CURRENCIES = st.sampled_from([*sorted(VALID_CURRENCIES), "ABC"])
#: A stage of the deal's pipeline by position, or one it does not have.
UNKNOWN_STAGE = "Nowhere"
STAGE_REFS: st.SearchStrategy[int | str] = st.sampled_from([0, 1, 2, 3, 4, 5, UNKNOWN_STAGE])
#: Minutes before the machine's clock that an interaction happened (negative: later).
MINUTES_AGO = st.sampled_from([0, 1, 90, 60 * 24, 60 * 24 * 30, -5, -6, -60])
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])
TEXTS = st.sampled_from(["", "follow up", "Left a voicemail"])
CORRECTIONS = st.sampled_from(
    ["occurred_at", "notes", "subject", "body", "duration_seconds", "unlink_contacts"]
)
ADMIN_LEVEL = Role.ADMIN.level
SYSTEM_LEVEL = 1_000_000


class RecordingCrm(Crm):
    """The write side as it is, remembering every aggregate it saved as it stands in memory."""

    # eventsourcing names an application (and so its PostgreSQL tables) after its class.
    name = Crm.name

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env=env)
        self.live: dict[UUID, Aggregate] = {}
        #: Every aggregate saved since the last check, as often as it was saved.
        self.touched: list[UUID] = []

    def save_with(self, meta: Meta, *objs: Aggregate | None) -> list[Recording[UUID]]:
        recordings = super().save_with(meta, *objs)
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.live[obj.id] = obj
                self.touched.append(obj.id)
        return recordings


@dataclass
class UserModel:
    email: str
    roles: list[Role]
    active: bool = True


@dataclass
class AccountModel:
    parent_id: UUID | None
    archived: bool = False


@dataclass
class DealModel:
    pipeline_id: UUID
    stage_id: UUID
    amount: Decimal
    currency: str
    status: DealStatus = DealStatus.OPEN


@dataclass
class InteractionModel:
    kind: InteractionKind
    fields: dict[str, Any]
    retracted: bool = False


@dataclass
class Model:
    """What the CRM should look like after the commands carried out so far."""

    users: dict[UUID, UserModel] = field(default_factory=dict)
    accounts: dict[UUID, AccountModel] = field(default_factory=dict)
    contacts: dict[UUID, list[str]] = field(default_factory=dict)
    erased: set[UUID] = field(default_factory=set)
    stages: dict[UUID, list[tuple[UUID, str]]] = field(default_factory=dict)
    deals: dict[UUID, DealModel] = field(default_factory=dict)
    interactions: dict[UUID, InteractionModel] = field(default_factory=dict)
    tasks: dict[UUID, bool] = field(default_factory=dict)

    def owners(self) -> set[UUID]:
        return {uid for uid, u in self.users.items() if u.active and Role.OWNER in u.roles}

    def email_holder(self, email: str) -> UUID | None:
        return next((cid for cid, emails in self.contacts.items() if email in emails), None)

    def ancestors(self, account_id: UUID) -> list[UUID]:
        ids: list[UUID] = []
        parent = self.accounts[account_id].parent_id
        while parent is not None:
            ids.append(parent)
            parent = self.accounts[parent].parent_id
        return ids


def normalized(email: str) -> str:
    return email.strip().lower()


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def grant_level(actor: Authority) -> int:
    if actor.is_system:
        return SYSTEM_LEVEL
    return max((role.level for role in actor.roles if role is not Role.AUDITOR), default=0)


def protection(roles: list[Role]) -> int:
    return max((role.level for role in roles), default=0)


def is_valid_money(amount: Decimal, currency: str) -> bool:
    exponent = amount.as_tuple().exponent
    return (
        currency in VALID_CURRENCIES
        and Decimal(0) <= amount < Decimal("1e15")
        and isinstance(exponent, int)
        and exponent >= -4
    )


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def all_of(cls: type[A], records: Mapping[UUID, Aggregate]) -> list[A]:
    return [record for record in records.values() if isinstance(record, cls)]


def check_invariants(records: Mapping[UUID, Aggregate], secret: bytes) -> None:
    """The CRM's invariants over a complete set of aggregates (``secret``: the store's
    ``Crm.index_secret``, which keys the ids of contacts' e-mail keys)."""
    accounts = {a.id: a for a in all_of(Account, records)}
    for account in accounts.values():
        above: list[UUID] = []
        parent = account.parent_id
        while parent is not None:
            assert parent != account.id, f"account {account.id} is its own ancestor"
            assert parent not in above, f"a cycle above account {account.id}"
            above.append(parent)
            parent = accounts[parent].parent_id

    # By id (keyed with the store's secret): what uniqueness rests on. The stored address
    # of a key first claimed by a contact since erased reads "[erased]".
    keys = {k.id: k.holder_id for k in all_of(UniqueKey, records)}
    holders: dict[str, UUID] = {}
    for contact in all_of(Contact, records):
        if contact.removed:  # its addresses were released in the removal's save
            assert contact.id not in keys.values(), f"removed {contact.id} holds a key"
            continue
        for email in contact.emails:
            assert email not in holders, f"{email} belongs to two contacts"
            holders[email] = contact.id
            holder = keys.get(email_key_id(secret, email))
            assert holder == contact.id, f"index disagrees on {email}"
            assert key_id(EMAIL_SCOPE, email) not in keys, f"{email} has a key at its uuid5"
    held = {email_key_id(secret, email): holder for email, holder in holders.items()}
    for key in all_of(UniqueKey, records):
        if key.scope == EMAIL_SCOPE:
            assert held.get(key.id) == key.holder_id, f"index holds {key.key} for the wrong one"

    users = all_of(User, records)
    assert len({user.email for user in users}) == len(users), "two users share an e-mail"
    for user in users:
        assert keys.get(key_id(USER_EMAIL_SCOPE, user.email)) == user.id
        assert len(set(user.roles)) == len(user.roles), f"user {user.id} holds a role twice"

    pipelines = {p.id: p for p in all_of(Pipeline, records)}
    for pipeline in pipelines.values():
        assert all(0 <= stage.probability <= 100 for stage in pipeline.stages)
        names = [stage.name.casefold() for stage in pipeline.stages]
        assert len(set(names)) == len(names), "two stages share a name"
    for deal in all_of(Deal, records):
        stage_ids = [stage.id for stage in pipelines[deal.pipeline_id].stages]
        assert deal.stage_id in stage_ids, f"deal {deal.id} sits in a stage its pipeline lacks"

    (roster,) = all_of(OwnerRoster, records)
    active_owners = {u.id for u in users if u.active and Role.OWNER in u.roles}
    assert active_owners, "no active Owner is left"
    assert len(roster.owners) == len(set(roster.owners))
    assert set(roster.owners) == active_owners, "the Owner roster disagrees with the users"


class CrmMachine(RuleBasedStateMachine):
    """Drives the write side with random commands; see the module docstring."""

    users = Bundle[UUID]("users")
    accounts = Bundle[UUID]("accounts")
    contacts = Bundle[UUID]("contacts")
    pipelines = Bundle[UUID]("pipelines")
    deals = Bundle[UUID]("deals")
    interactions = Bundle[UUID]("interactions")
    tasks = Bundle[UUID]("tasks")

    def new_store(self) -> dict[str, str]:
        raise NotImplementedError("subclasses say where each example's store lives")

    def __init__(self) -> None:
        super().__init__()
        # Snapshots every 3 events: records reload from snapshots all the time, and the
        # invariants below compare them with the records as they are in memory.
        self.env = {**self.new_store(), "CRM_SNAPSHOT_EVERY": "3"}
        self.crm = RecordingCrm(self.env)
        self.reader = Crm(env=self.env)
        self.now = datetime.now(UTC)
        self.model = Model()
        self.invited: list[UUID] = []
        # As after `crm init`: an Owner exists before anything else happens; and a
        # pipeline, so that deals can open from the first step on.
        self.founder = self.invite_the_founder()
        first_pipeline = [("Lead", 10), ("Proposal", 50), ("Won", 100)]
        pipeline_id = self.pipeline_created(Authority.system(), first_pipeline)
        assert pipeline_id is not None
        self.first_pipeline = pipeline_id

    # -- running commands -------------------------------------------------------------

    def actor(self, pick: int) -> Authority:
        if pick == SYSTEM:
            return Authority.system()
        active = [uid for uid in self.invited if self.model.users[uid].active]
        return self.live(User, active[pick % len(active)]).authority

    def live(self, cls: type[A], record_id: UUID) -> A:
        record = self.crm.live[record_id]
        assert isinstance(record, cls)
        return record

    def run(
        self, command: Payload, actor: Authority, refusals: list[type[Exception]]
    ) -> Receipt | None:
        """Execute ``command``; it must be refused (with one of ``refusals``, writing
        nothing) exactly when ``refusals`` is not empty."""
        if not actor.is_system and all(role is Role.AUDITOR for role in actor.roles):
            refusals = [*refusals, ReadOnlyError]
        if self.table_denies(command, actor):
            refusals = [*refusals, DeniedError]
        reasons = [r.__name__ for r in refusals]
        before = self.crm.position()
        touched = len(self.crm.touched)
        outcome = self.attempt(command, Context(actor=actor, source="test", now=self.now))
        if not isinstance(outcome, Receipt):
            assert refusals, f"{command!r} was refused: {outcome!r}"
            assert isinstance(outcome, tuple(refusals)), f"refused by {outcome!r}, not {reasons}"
            assert self.crm.position() == before, f"refused {command!r} wrote events"
            assert len(self.crm.touched) == touched, f"refused {command!r} saved aggregates"
            return None
        receipt = outcome
        assert not refusals, f"{command!r} was carried out, though {reasons}"
        assert receipt.position == self.crm.position() >= before
        return receipt

    def table_denies(self, command: Payload, actor: Authority) -> bool:
        """Whether the permission table refuses ``actor`` the command, for the owner of
        its record (and, for a reassignment, the new owner)."""
        permit = PERMITS[type(command)]
        if permit is None:
            return False
        resource, action = permit
        new_owner = getattr(command, "owner_id", None) or getattr(command, "assignee_id", None)
        if action is Action.CREATE:
            if resource is Resource.INTERACTION:
                new_owner = actor.user_id
            owners = [new_owner or actor.user_id] if resource is not Resource.PIPELINE else [None]
        else:
            target = getattr(command, f"{resource.value}_id")
            record = self.crm.live.get(target)
            owners = [owner_of(record) if record is not None else None]
            if new_owner is not None:
                owners.append(new_owner)
        if not all(may(actor, resource, action, owner) for owner in owners):
            return True
        # Every record the command links to must be one the actor may read.
        for linked in self.links(command, resource):
            owned = ownership_of(linked)
            if owned is not None and not may(actor, owned[0], Action.READ, owned[1]):
                return True
        return False

    def links(self, command: Payload, resource: Resource) -> list[Aggregate]:
        """The stored records ``command``'s body links to (not the record it is about)."""
        ids: list[UUID] = []
        for name in command.model_fields_set:
            value = getattr(command, name)
            if name in LINK_FIELDS and name != f"{resource.value}_id" and value is not None:
                ids.extend(value if isinstance(value, list) else [value])
        return [self.crm.live[i] for i in ids if i in self.crm.live]

    def attempt(self, command: Payload, ctx: Context) -> Receipt | DomainError | CommandError:
        try:
            return execute(self.crm, command, ctx)
        except (DomainError, CommandError) as error:
            return error

    def stage_ref(
        self, pipeline_id: UUID, ref: int | str, by_name: bool
    ) -> tuple[str, UUID | None]:
        """The reference a client would send, and the stage it names (None: no such)."""
        if isinstance(ref, str):
            return ref, None
        stage_id, name = self.model.stages[pipeline_id][ref % len(self.model.stages[pipeline_id])]
        return (name.upper() if by_name else str(stage_id)), stage_id

    # -- users --------------------------------------------------------------------------

    def invite_the_founder(self) -> UUID:
        command = InviteUser(email="founder@example.com", name="Founder", role=Role.OWNER)
        receipt = self.run(command, Authority.system(), [])
        assert receipt is not None
        self.model.users[receipt.id] = UserModel("founder@example.com", [Role.OWNER])
        self.invited.append(receipt.id)
        return receipt.id

    @initialize(target=users)
    def the_founder(self) -> UUID:
        return self.founder

    @rule(target=users, actor=ACTORS, email=USER_EMAILS, role=st.sampled_from(Role))
    def invite_user(self, actor: int, email: str, role: Role) -> UUID | MultipleResults[UUID]:
        by = self.actor(actor)
        refusals: list[type[Exception]] = []
        if role.level >= grant_level(by):
            refusals.append(EscalationError)
        if any(u.email == normalized(email) for u in self.model.users.values()):
            refusals.append(KeyTakenError)
        receipt = self.run(InviteUser(email=email, name="Someone", role=role), by, refusals)
        if receipt is None:
            return multiple()
        self.model.users[receipt.id] = UserModel(normalized(email), [role])
        self.invited.append(receipt.id)
        return receipt.id

    def management_refusals(self, by: Authority, user_id: UUID) -> list[type[Exception]]:
        user = self.model.users[user_id]
        refusals: list[type[Exception]] = []
        if not user.active:
            refusals.append(UserDeactivatedError)
        if by.user_id == user_id:
            refusals.append(SelfRoleChangeError)
        if protection(user.roles) >= grant_level(by):
            refusals.append(EscalationError)
        return refusals

    @rule(actor=ACTORS, user=users, role=st.sampled_from(Role))
    def grant_role(self, actor: int, user: UUID, role: Role) -> None:
        by = self.actor(actor)
        refusals = self.management_refusals(by, user)
        if role.level >= grant_level(by):
            refusals.append(EscalationError)
        if role in self.model.users[user].roles:
            refusals.append(RoleAlreadyHeldError)
        if self.run(GrantRole(user_id=user, role=role), by, refusals):
            self.model.users[user].roles.append(role)

    @rule(actor=ACTORS, user=users, role=st.sampled_from(Role))
    def revoke_role(self, actor: int, user: UUID, role: Role) -> None:
        by = self.actor(actor)
        refusals = self.management_refusals(by, user)
        if role.level >= grant_level(by):
            refusals.append(EscalationError)
        if role not in self.model.users[user].roles:
            refusals.append(RoleNotHeldError)
        if role is Role.OWNER and self.model.owners() == {user}:
            refusals.append(LastOwnerError)
        if self.run(RevokeRole(user_id=user, role=role), by, refusals):
            self.model.users[user].roles.remove(role)

    @rule(actor=ACTORS, user=users)
    def deactivate_user(self, actor: int, user: UUID) -> None:
        by = self.actor(actor)
        refusals = self.management_refusals(by, user)
        if self.model.owners() == {user}:
            refusals.append(LastOwnerError)
        if self.run(DeactivateUser(user_id=user), by, refusals):
            self.model.users[user].active = False

    def owner_refusals(self, owner_id: UUID) -> list[type[Exception]]:
        return [] if self.model.users[owner_id].active else [UserDeactivatedError]

    def archived(self, account_id: UUID | None) -> list[type[Exception]]:
        if account_id is None or not self.model.accounts[account_id].archived:
            return []
        return [AccountArchivedError]

    def erased(self, *contact_ids: UUID | None) -> list[type[Exception]]:
        """An erased contact cannot be changed, nor named by any new link."""
        return [ContactErasedError] if self.model.erased.intersection(contact_ids) else []

    # -- accounts -----------------------------------------------------------------------

    @rule(
        target=accounts,
        actor=ACTORS,
        owner=users,
        parent=st.none() | accounts,
        country=COUNTRIES,
    )
    def register_account(
        self, actor: int, owner: UUID, parent: UUID | None, country: str | None
    ) -> UUID | MultipleResults[UUID]:
        refusals = self.owner_refusals(owner) + self.archived(parent)
        if country is not None and country != country.upper():
            refusals.append(InvalidValueError)
        command = RegisterAccount(name="Acme", country=country, owner_id=owner, parent_id=parent)
        receipt = self.run(command, self.actor(actor), refusals)
        if receipt is None:
            return multiple()
        self.model.accounts[receipt.id] = AccountModel(parent_id=parent)
        return receipt.id

    @rule(actor=ACTORS, account=accounts, parent=st.none() | accounts)
    def move_account(self, actor: int, account: UUID, parent: UUID | None) -> None:
        refusals = self.archived(account) + self.archived(parent)
        if parent is not None and (parent == account or account in self.model.ancestors(parent)):
            refusals.append(CycleError)
        if self.run(MoveAccount(account_id=account, parent_id=parent), self.actor(actor), refusals):
            self.model.accounts[account].parent_id = parent

    @rule(actor=ACTORS, account=accounts)
    def archive_account(self, actor: int, account: UUID) -> None:
        refusals = self.archived(account)
        if self.run(ArchiveAccount(account_id=account), self.actor(actor), refusals):
            self.model.accounts[account].archived = True

    @rule(actor=ACTORS, account=accounts)
    def restore_account(self, actor: int, account: UUID) -> None:
        refusals: list[type[Exception]] = [] if self.archived(account) else [AccountError]
        if self.run(RestoreAccount(account_id=account), self.actor(actor), refusals):
            self.model.accounts[account].archived = False

    # -- contacts -----------------------------------------------------------------------

    def taken(self, emails: list[str], contact_id: UUID | None) -> list[type[Exception]]:
        holders = {self.model.email_holder(email) for email in emails}
        return [KeyTakenError] if holders - {None, contact_id} else []

    @rule(
        target=contacts,
        actor=ACTORS,
        owner=users,
        account=st.none() | accounts,
        emails=CONTACT_EMAILS,
    )
    def create_contact(
        self, actor: int, owner: UUID, account: UUID | None, emails: list[str]
    ) -> UUID | MultipleResults[UUID]:
        addresses = unique([normalized(e) for e in emails])
        refusals = self.owner_refusals(owner) + self.archived(account)
        refusals += self.taken(addresses, None)
        command = CreateContact(first_name="Kim", emails=emails, owner_id=owner, account_id=account)
        receipt = self.run(command, self.actor(actor), refusals)
        if receipt is None:
            return multiple()
        self.model.contacts[receipt.id] = addresses
        return receipt.id

    @rule(actor=ACTORS, contact=contacts, emails=CONTACT_EMAILS)
    def change_contact_emails(self, actor: int, contact: UUID, emails: list[str]) -> None:
        addresses = unique([normalized(e) for e in emails])
        refusals = self.taken(addresses, contact) + self.erased(contact)
        command = UpdateContact(contact_id=contact, emails=emails)
        if self.run(command, self.actor(actor), refusals):
            self.model.contacts[contact] = addresses

    @rule(actor=ACTORS, contact=contacts, basis=st.sampled_from(ErasureBasis))
    def erase_contact(self, actor: int, contact: UUID, basis: ErasureBasis) -> None:
        """GDPR erasure: again on an erased contact, it succeeds and writes nothing."""
        refusals: list[type[Exception]] = []
        if basis is ErasureBasis.UNRECORDED:  # only erasures from before bases existed
            refusals.append(InvalidValueError)
        before = self.crm.position()
        command = EraseContact(contact_id=contact, basis=basis, reference="GDPR-7")
        if self.run(command, self.actor(actor), refusals) is None:
            return
        if contact in self.model.erased:
            assert self.crm.position() == before, "erasing an erased contact wrote events"
        self.model.contacts[contact] = []
        self.model.erased.add(contact)

    # -- pipelines ----------------------------------------------------------------------

    def admin_refusals(self, by: Authority) -> list[type[Exception]]:
        return [NotPermittedError] if grant_level(by) < ADMIN_LEVEL else []

    @rule(
        target=pipelines,
        actor=ACTORS,
        stages=st.lists(st.tuples(STAGE_NAMES, PROBABILITIES), min_size=1, max_size=4),
    )
    def create_pipeline(
        self, actor: int, stages: list[tuple[str, int]]
    ) -> UUID | MultipleResults[UUID]:
        pipeline_id = self.pipeline_created(self.actor(actor), stages)
        return multiple() if pipeline_id is None else pipeline_id

    @initialize(target=pipelines)
    def the_first_pipeline(self) -> UUID:
        return self.first_pipeline

    def pipeline_created(self, by: Authority, stages: list[tuple[str, int]]) -> UUID | None:
        refusals = self.admin_refusals(by)
        if len({name.casefold() for name, _ in stages}) < len(stages):
            refusals.append(DuplicateStageNameError)
        specs = [StageSpec(name=name, probability=p) for name, p in stages]
        receipt = self.run(CreatePipeline(name="Sales", stages=specs), by, refusals)
        if receipt is None:
            return None
        pipeline = self.live(Pipeline, receipt.id)
        self.model.stages[receipt.id] = [(stage.id, stage.name) for stage in pipeline.stages]
        return receipt.id

    @rule(
        actor=ACTORS,
        pipeline=pipelines,
        name=STAGE_NAMES,
        probability=PROBABILITIES,
        position=st.none() | st.integers(min_value=0, max_value=6),
    )
    def add_stage(
        self, actor: int, pipeline: UUID, name: str, probability: int, position: int | None
    ) -> None:
        by = self.actor(actor)
        stages = self.model.stages[pipeline]
        refusals = self.admin_refusals(by)
        if any(existing.casefold() == name.casefold() for _, existing in stages):
            refusals.append(DuplicateStageNameError)
        if position is not None and position > len(stages):
            refusals.append(InvalidValueError)
        command = AddStage(
            pipeline_id=pipeline, name=name, probability=probability, position=position
        )
        receipt = self.run(command, by, refusals)
        if receipt is not None:
            at = len(stages) if position is None else position
            stages.insert(at, (receipt.created["stage_id"], name))

    @rule(actor=ACTORS, pipeline=pipelines, pick=st.integers(0, 5), probability=PROBABILITIES)
    def reweight_stage(self, actor: int, pipeline: UUID, pick: int, probability: int) -> None:
        by = self.actor(actor)
        stage_id, _ = self.model.stages[pipeline][pick % len(self.model.stages[pipeline])]
        command = ChangeStage(pipeline_id=pipeline, stage_id=stage_id, probability=probability)
        self.run(command, by, self.admin_refusals(by))

    # -- deals --------------------------------------------------------------------------

    @rule(
        target=deals,
        actor=ACTORS,
        owner=users,
        pipeline=pipelines,
        stage=st.none() | STAGE_REFS,
        by_name=st.booleans(),
        account=st.none() | accounts,
        contacts=st.lists(contacts, max_size=2),
        amount=AMOUNTS,
        currency=CURRENCIES,
    )
    def open_deal(
        self,
        actor: int,
        owner: UUID,
        pipeline: UUID,
        stage: int | str | None,
        by_name: bool,
        account: UUID | None,
        contacts: list[UUID],
        amount: Decimal,
        currency: str,
    ) -> UUID | MultipleResults[UUID]:
        refusals = self.owner_refusals(owner) + self.archived(account) + self.erased(*contacts)
        if not is_valid_money(amount, currency):
            refusals.append(InvalidValueError)
        ref: str | None = None
        stage_id: UUID | None = self.model.stages[pipeline][0][0]
        if stage is not None:
            ref, stage_id = self.stage_ref(pipeline, stage, by_name)
        if stage_id is None:
            refusals.append(UnknownStageError)
        command = OpenDeal(
            title="Big deal",
            amount=amount,
            currency=currency,
            pipeline_id=pipeline,
            stage=ref,
            account_id=account,
            contact_ids=contacts,
            owner_id=owner,
        )
        receipt = self.run(command, self.actor(actor), refusals)
        if receipt is None:
            return multiple()
        assert stage_id is not None
        self.model.deals[receipt.id] = DealModel(pipeline, stage_id, amount, currency)
        return receipt.id

    def closed(self, deal: UUID) -> list[type[Exception]]:
        return [] if self.model.deals[deal].status is DealStatus.OPEN else [DealClosedError]

    @rule(actor=ACTORS, deal=deals, stage=STAGE_REFS, by_name=st.booleans())
    def move_deal(self, actor: int, deal: UUID, stage: int | str, by_name: bool) -> None:
        ref, stage_id = self.stage_ref(self.model.deals[deal].pipeline_id, stage, by_name)
        refusals = self.closed(deal) + ([UnknownStageError] if stage_id is None else [])
        if self.run(MoveDeal(deal_id=deal, stage=ref), self.actor(actor), refusals):
            assert stage_id is not None
            self.model.deals[deal].stage_id = stage_id

    @rule(actor=ACTORS, deal=deals, amount=AMOUNTS, currency=st.none() | CURRENCIES)
    def change_deal_amount(
        self, actor: int, deal: UUID, amount: Decimal, currency: str | None
    ) -> None:
        model = self.model.deals[deal]
        refusals = self.closed(deal)
        if not is_valid_money(amount, currency or model.currency):
            refusals.append(InvalidValueError)
        command = (
            UpdateDeal(deal_id=deal, amount=amount)
            if currency is None
            else UpdateDeal(deal_id=deal, amount=amount, currency=currency)
        )
        if self.run(command, self.actor(actor), refusals):
            model.amount, model.currency = amount, currency or model.currency

    @rule(actor=ACTORS, deal=deals, won=st.booleans())
    def close_deal(self, actor: int, deal: UUID, won: bool) -> None:
        command = WinDeal(deal_id=deal) if won else LoseDeal(deal_id=deal)
        if self.run(command, self.actor(actor), self.closed(deal)):
            self.model.deals[deal].status = DealStatus.WON if won else DealStatus.LOST

    @rule(actor=ACTORS, deal=deals, stage=st.none() | STAGE_REFS, by_name=st.booleans())
    def reopen_deal(self, actor: int, deal: UUID, stage: int | str | None, by_name: bool) -> None:
        model = self.model.deals[deal]
        ref: str | None = None
        stage_id: UUID | None = model.stage_id
        if stage is not None:
            ref, stage_id = self.stage_ref(model.pipeline_id, stage, by_name)
        refusals: list[type[Exception]] = []
        if model.status is DealStatus.OPEN:
            refusals.append(DealNotClosedError)
        if stage_id is None:
            refusals.append(UnknownStageError)
        if self.run(ReopenDeal(deal_id=deal, stage=ref), self.actor(actor), refusals):
            assert stage_id is not None
            model.status, model.stage_id = DealStatus.OPEN, stage_id

    # -- interactions -------------------------------------------------------------------

    @rule(
        target=interactions,
        actor=ACTORS,
        kind=st.sampled_from(InteractionKind),
        minutes_ago=MINUTES_AGO,
        zone=ZONES,
        contact=st.none() | contacts,
        account=st.none() | accounts,
        deal=st.none() | deals,
        text=TEXTS,
    )
    def log_interaction(
        self,
        actor: int,
        kind: InteractionKind,
        minutes_ago: int,
        zone: timezone,
        contact: UUID | None,
        account: UUID | None,
        deal: UUID | None,
        text: str,
    ) -> UUID | MultipleResults[UUID]:
        occurred_at = (self.now - timedelta(minutes=minutes_ago)).astimezone(zone)
        links: dict[str, Any] = {
            "occurred_at": occurred_at,
            "contact_ids": [contact] if contact else [],
            "account_id": account,
            "deal_id": deal,
        }
        command: LogInteraction
        if kind is InteractionKind.CALL:
            command = LogCall(
                **links,
                direction=Direction.OUTBOUND,
                duration_seconds=90,
                outcome=CallOutcome.CONNECTED,
                notes=text,
            )
        elif kind is InteractionKind.EMAIL:
            command = LogEmail(**links, direction=Direction.INBOUND, subject=text, body=text)
        elif kind is InteractionKind.MEETING:
            ends_at = occurred_at + timedelta(minutes=30)
            command = LogMeeting(**links, ends_at=ends_at, title="Demo", attendees=["kim"])
        elif kind is InteractionKind.NOTE:
            command = LogNote(**links, body=text or "noted")
        else:
            command = LogSms(**links, direction=Direction.OUTBOUND, body=text or "hi")
        fields = {**links, **command.details()}
        refusals = self.interaction_refusals(kind, fields) + self.erased(contact)
        receipt = self.run(command, self.actor(actor), refusals)
        if receipt is None:
            return multiple()
        self.model.interactions[receipt.id] = InteractionModel(kind, fields)
        return receipt.id

    def interaction_refusals(
        self, kind: InteractionKind, fields: Mapping[str, Any]
    ) -> list[type[Exception]]:
        refusals: list[type[Exception]] = []
        if not (fields["contact_ids"] or fields["account_id"] or fields["deal_id"]):
            refusals.append(InvalidValueError)
        if kind is not InteractionKind.MEETING and fields["occurred_at"] > self.now + CLOCK_SKEW:
            refusals.append(InvalidValueError)
        if kind is InteractionKind.MEETING and fields["ends_at"] < fields["occurred_at"]:
            refusals.append(InvalidValueError)
        return refusals

    @rule(
        actor=ACTORS,
        interaction=interactions,
        what=CORRECTIONS,
        minutes_ago=MINUTES_AGO,
        text=TEXTS,
    )
    def correct_interaction(
        self, actor: int, interaction: UUID, what: str, minutes_ago: int, text: str
    ) -> None:
        model = self.model.interactions[interaction]
        changes: dict[str, Any]
        if what == "occurred_at":
            changes = {"occurred_at": self.now - timedelta(minutes=minutes_ago)}
        elif what == "duration_seconds":
            changes = {"duration_seconds": max(minutes_ago, 0)}
        elif what == "unlink_contacts":
            changes = {"contact_ids": []}
        else:
            changes = {what: text}
        refusals: list[type[Exception]] = []
        if model.retracted:
            refusals.append(InteractionRetractedError)
        if set(changes) - COMMON_FIELDS - DETAIL_FIELDS[model.kind]:
            refusals.append(InvalidValueError)
        elif any(model.fields[k] != v for k, v in changes.items()):
            refusals += self.interaction_refusals(model.kind, {**model.fields, **changes})
        command = CorrectInteraction(interaction_id=interaction, **changes)
        if self.run(command, self.actor(actor), refusals):
            model.fields.update(changes)

    @rule(actor=ACTORS, interaction=interactions)
    def retract_interaction(self, actor: int, interaction: UUID) -> None:
        model = self.model.interactions[interaction]
        refusals: list[type[Exception]] = [InteractionRetractedError] if model.retracted else []
        command = RetractInteraction(interaction_id=interaction, reason="logged by mistake")
        if self.run(command, self.actor(actor), refusals):
            model.retracted = True

    # -- tasks --------------------------------------------------------------------------

    @rule(
        target=tasks,
        actor=ACTORS,
        assignee=users,
        link=st.none()
        | st.tuples(st.just(RecordKind.ACCOUNT), accounts)
        | st.tuples(st.just(RecordKind.CONTACT), contacts)
        | st.tuples(st.just(RecordKind.DEAL), deals),
        due_in_days=st.none() | st.integers(min_value=-3, max_value=30),
    )
    def create_task(
        self,
        actor: int,
        assignee: UUID,
        link: tuple[RecordKind, UUID] | None,
        due_in_days: int | None,
    ) -> UUID | MultipleResults[UUID]:
        due_at = None if due_in_days is None else self.now + timedelta(days=due_in_days)
        command = CreateTask(
            title="Call back",
            assignee_id=assignee,
            due_at=due_at,
            linked_kind=link[0] if link else None,
            linked_id=link[1] if link else None,
        )
        linked = link[1] if link and link[0] is RecordKind.CONTACT else None
        refusals = self.owner_refusals(assignee) + self.erased(linked)
        receipt = self.run(command, self.actor(actor), refusals)
        if receipt is None:
            return multiple()
        self.model.tasks[receipt.id] = False
        return receipt.id

    @rule(actor=ACTORS, task=tasks, complete=st.booleans())
    def complete_or_reopen_task(self, actor: int, task: UUID, complete: bool) -> None:
        completed = self.model.tasks[task]
        refusals: list[type[Exception]] = []
        if complete and completed:
            refusals.append(TaskCompletedError)
        if not complete and not completed:
            refusals.append(TaskNotCompletedError)
        command = CompleteTask(task_id=task) if complete else ReopenTask(task_id=task)
        if self.run(command, self.actor(actor), refusals):
            self.model.tasks[task] = complete

    # -- properties ---------------------------------------------------------------------

    @invariant()
    def saved_aggregates_reload_as_they_are_in_memory(self) -> None:
        for record_id in set(self.crm.touched):
            stored: Aggregate = self.reader.repository.get(record_id)
            live = self.crm.live[record_id]
            assert state(stored) == state(live), f"{live!r} reloads differently"
            versions = [e.originator_version for e in self.reader.recorder.select_events(record_id)]
            assert versions == list(range(1, stored.version + 1))
        self.crm.touched.clear()

    @invariant()
    def the_crm_in_memory_agrees_with_the_model_and_keeps_every_invariant(self) -> None:
        check_invariants(self.crm.live, self.crm.index_secret)
        for user_id, user in self.model.users.items():
            live_user = self.live(User, user_id)
            assert (live_user.email, live_user.roles, live_user.active) == (
                user.email,
                user.roles,
                user.active,
            )
        for account_id, account in self.model.accounts.items():
            live_account = self.live(Account, account_id)
            assert (live_account.parent_id, live_account.archived) == (
                account.parent_id,
                account.archived,
            )
        for contact_id, emails in self.model.contacts.items():
            live_contact = self.live(Contact, contact_id)
            assert ([] if live_contact.removed else live_contact.emails) == emails
        for pipeline_id, stages in self.model.stages.items():
            live_stages = self.live(Pipeline, pipeline_id).stages
            assert [(s.id, s.name) for s in live_stages] == stages
        for deal_id, deal in self.model.deals.items():
            d = self.live(Deal, deal_id)
            assert (d.pipeline_id, d.stage_id, d.amount, d.currency, d.status) == (
                deal.pipeline_id,
                deal.stage_id,
                deal.amount,
                deal.currency,
                deal.status,
            )
        for interaction_id, interaction in self.model.interactions.items():
            i = self.live(Interaction, interaction_id)
            assert (i.kind, i.retracted) == (interaction.kind, interaction.retracted)
            assert {k: i.current(k) for k in interaction.fields} == interaction.fields
        for task_id, completed in self.model.tasks.items():
            assert self.live(Task, task_id).completed == completed

    def teardown(self) -> None:
        try:
            # Skip the final sweep when a step has already failed: its error is the news.
            if sys.exc_info()[1] is None:
                self.check_the_whole_store_from_a_fresh_application()
        finally:
            self.reader.close()
            self.crm.close()

    def check_the_whole_store_from_a_fresh_application(self) -> None:
        fresh = Crm(env=self.env)
        try:
            notifications = fresh.recorder.select_notifications(start=1, limit=100_000)
            positions = [n.id for n in notifications]
            assert positions == sorted(set(positions)), "global positions are out of order"
            versions: dict[UUID, list[int]] = {}
            for notification in notifications:
                originator = UUID(str(notification.originator_id))
                versions.setdefault(originator, []).append(notification.originator_version)
            assert set(versions) == set(self.crm.live), "the store holds unknown aggregates"
            for originator, numbers in versions.items():
                assert numbers == list(range(1, len(numbers) + 1)), f"gap in {originator}"

            reloaded: dict[UUID, Aggregate] = {
                record_id: fresh.repository.get(record_id) for record_id in versions
            }
            for record_id, record in reloaded.items():
                live = self.crm.live[record_id]
                assert state(record) == state(live), f"{live!r} reloads differently"
            check_invariants(reloaded, fresh.index_secret)

            # The hierarchy log, which serialises moves, ends where every account stands.
            last_parent: dict[UUID, UUID | None] = {}
            for stored in fresh.recorder.select_events(the_hierarchy()):
                moved = fresh.mapper.to_domain_event(stored)
                if isinstance(moved, Hierarchy.ParentSet):
                    last_parent[moved.account_id] = moved.parent_id
            for account_id, parent_id in last_parent.items():
                account = reloaded[account_id]
                assert isinstance(account, Account)
                assert account.parent_id == parent_id
        finally:
            fresh.close()


RUNS = {
    "sqlite": settings(max_examples=40, stateful_step_count=40),
    "postgres": settings(max_examples=15, stateful_step_count=30),
}


def test_random_command_sequences_keep_every_invariant_and_refusals_write_nothing(
    store_kind: str, empty_store: StoreFactory
) -> None:
    class Machine(CrmMachine):
        def new_store(self) -> dict[str, str]:
            return empty_store()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            RUNS[store_kind],
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
