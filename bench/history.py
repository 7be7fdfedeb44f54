"""A realistic CRM history, written fast: users, pipelines, accounts in a hierarchy,
contacts, deals moving through stages and closing, interactions of every kind (some
corrected or retracted later), tasks — about two years of a sales team's work.

Every event comes from the domain methods, called as the command handlers call them
(same arguments, same index and roster aggregates in the same save), so the stored
events are exactly what the real commands write. What is skipped is the per-command
round trip: references are checked against the aggregates held in memory instead of
being loaded from the store, and many commands are written in one transaction.

Each command gets its own metadata (actor, request id, source), as through the API:
its events are mapped by the application's own mapper (``crm.mapper``, what
``Crm.save_with`` runs) inside ``save_meta``, and a batch of commands is inserted by
the application's recorder in one ``insert_events`` call (what ``save_with`` ends in).
One ``save_with`` per batch would stamp one actor and request id on thousands of
events, which the audit log would then show.

Activity is drawn by weight (:data:`ACTIVITY`); the simulated clock runs over
:data:`SPAN`, so the times at which interactions happened and tasks fall due spread
over it (``recorded_at`` is the real time of writing, as always).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from commands.app import Crm
from commands.persistence import Meta, save_meta
from commands.tokens import new_token
from commands.users import USER_EMAIL_SCOPE
from domain.account import Account, AccountHierarchyCycleError, Hierarchy
from domain.contact import EMAIL_SCOPE, Contact, LifecycleStage
from domain.deal import Deal
from domain.index import UniqueKey
from domain.interaction import CallOutcome, Interaction, InteractionKind
from domain.pipeline import Pipeline
from domain.roles import Authority, Role
from domain.task import RecordKind, Task
from domain.user import OwnerRoster, User
from domain.values import Direction, Money

T = TypeVar("T")

SPAN = timedelta(days=730)

#: Commands of the day-to-day work, by weight (per command, not per event).
ACTIVITY: dict[str, float] = {
    "log_call": 22,
    "log_email": 20,
    "log_meeting": 6,
    "log_note": 8,
    "log_sms": 4,
    "correct_interaction": 2.5,
    "retract_interaction": 0.8,
    "move_deal": 10,
    "open_deal": 4,
    "update_deal": 2,
    "reassign_deal": 0.4,
    "win_deal": 1.2,
    "lose_deal": 1.3,
    "reopen_deal": 0.2,
    "create_task": 5,
    "complete_task": 3.5,
    "update_task": 1,
    "assign_task": 0.5,
    "reopen_task": 0.2,
    "create_contact": 3,
    "update_contact": 0.6,
    "change_contact_emails": 0.2,
    "tag_contact": 1,
    "untag_contact": 0.2,
    "change_lifecycle_stage": 1,
    "link_contact": 0.3,
    "reassign_contact": 0.2,
    "register_account": 1,
    "update_account": 0.4,
    "reassign_account": 0.2,
    "move_account": 0.2,
    "archive_account": 0.1,
    "restore_account": 0.05,
    "invite_user": 0.01,
    "grant_role": 0.01,
    "issue_token": 0.01,
    "change_pipeline": 0.005,
}

PIPELINES: dict[str, list[tuple[str, int]]] = {
    "New business": [
        ("Qualified", 10),
        ("Discovery", 20),
        ("Proposal", 40),
        ("Negotiation", 60),
        ("Commit", 80),
        ("Signed", 95),
    ],
    "Renewals": [("Upcoming", 50), ("In talks", 70), ("Verbal yes", 90), ("Paperwork", 95)],
    "Partnerships": [("Intro", 10), ("Pilot", 30), ("Terms", 60), ("Contract", 85)],
}
INDUSTRIES = ("Software", "Retail", "Manufacturing", "Finance", "Health", "Logistics", "Energy")
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "SE", "PL", "AT", "CH")
CURRENCIES = ("EUR", "EUR", "EUR", "USD", "USD", "GBP")
TAGS = ("vip", "newsletter", "decision-maker", "technical", "champion", "event-2024", "churn-risk")
FIRST = ("Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas")
LAST = ("Müller", "Smith", "Dubois", "Rossi", "Novak", "García", "Jansen", "Berg", "Kowalski")
TITLES = ("CTO", "Head of Sales", "Buyer", "CFO", "Engineer", "Office manager", None)
WORDS = (
    "pricing",
    "rollout",
    "integration",
    "security review",
    "renewal",
    "budget",
    "timeline",
    "legal",
    "onboarding",
    "discount",
)


def _pop(items: list[T], index: int) -> T:
    """Remove and return ``items[index]`` in O(1) (order does not matter)."""
    items[index], items[-1] = items[-1], items[index]
    return items.pop()


@dataclass
class LoadStats:
    events: int = 0
    commands: int = 0
    batches: int = 0
    seconds: float = 0.0
    by_command: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class History:
    """The CRM's world in memory, and the writer of its events in batches."""

    def __init__(self, crm: Crm, seed: int = 1, batch_events: int = 5_000) -> None:
        self.crm = crm
        self.rng = random.Random(seed)
        self.batch_events = batch_events
        self.pending: list[StoredEvent] = []
        self.stats = LoadStats()
        self.serial = 0
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now - SPAN
        self.target = 1
        self.roster: OwnerRoster | None = None
        self.hierarchy: Hierarchy | None = None
        self.users: dict[uuid.UUID, User] = {}
        self.reps: list[User] = []
        self.admins: list[User] = []
        self.pipelines: list[Pipeline] = []
        self.accounts: list[Account] = []
        self.archived: list[Account] = []
        self.account_by_id: dict[uuid.UUID, Account] = {}
        self.contacts_of: dict[uuid.UUID, list[Contact]] = {}
        self.contacts: list[Contact] = []
        self.keys: dict[str, UniqueKey] = {}
        self.open_deals: list[Deal] = []
        self.closed_deals: deque[Deal] = deque(maxlen=5_000)
        self.pipeline_by_id: dict[uuid.UUID, Pipeline] = {}
        self.recent: deque[Interaction] = deque(maxlen=5_000)
        self.open_tasks: list[Task] = []
        self.done_tasks: deque[Task] = deque(maxlen=2_000)
        names = list(ACTIVITY)
        self._activity: list[Callable[[], None]] = [getattr(self, n) for n in names]
        self._activity_names = names
        self._weights = list(ACTIVITY.values())

    # ------------------------------------------------------------ writing

    def commit(self, command: str, actor: User | None, *aggregates: Aggregate | None) -> None:
        """One command's events, with its own metadata, into the current batch."""
        meta = Meta(
            actor=actor.id.hex if actor is not None else "system",
            request_id=uuid.uuid4().hex,
            source="api" if actor is not None else "cli",
        )
        mapper = self.crm.mapper
        written = 0
        with save_meta(meta):
            for aggregate in aggregates:
                if aggregate is not None:
                    for event in aggregate.collect_events():
                        self.pending.append(mapper.to_stored_event(event))
                        written += 1
        if written:
            self.stats.events += written
            self.stats.commands += 1
            self.stats.by_command[command] = self.stats.by_command.get(command, 0) + 1
        if len(self.pending) >= self.batch_events:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.crm.recorder.insert_events(self.pending)
            self.pending = []
            self.stats.batches += 1

    # ------------------------------------------------------------ the run

    def load(self, events: int, progress: Callable[[int], None] | None = None) -> LoadStats:
        """Write about ``events`` events (at least that many; a command is not split)."""
        self.target = events
        started = time.perf_counter()
        scale = events / 1_000_000
        self.setup(scale)
        last_report = 0
        pick = self.rng.choices
        activity, weights = self._activity, self._weights
        while self.stats.events < events:
            for step in pick(activity, weights, k=256):
                step()
                if self.stats.events >= events:
                    break
            if progress is not None and self.stats.events - last_report >= 10_000:
                last_report = self.stats.events
                progress(self.stats.events)
        self.flush()
        self.stats.seconds = time.perf_counter() - started
        self.stats.counts = {
            "users": len(self.users),
            "accounts": len(self.account_by_id),
            "contacts": len(self.contacts),
            "open_deals": len(self.open_deals),
            "open_tasks": len(self.open_tasks),
        }
        if progress is not None:
            progress(self.stats.events)
        return replace(self.stats, by_command=dict(self.stats.by_command))

    def setup(self, scale: float) -> None:
        owner = self.invite(None, Role.OWNER)
        self.admins.append(owner)
        admin = self.invite(owner, Role.ADMIN)
        self.admins.append(admin)
        for _ in range(max(1, round(4 * scale))):
            self.invite(admin, Role.MANAGER)
        for _ in range(max(3, round(45 * scale))):
            self.reps.append(self.invite(admin, Role.SALES_REP))
        for name, stages in PIPELINES.items():
            pipeline = Pipeline.create(name, stages)
            self.pipelines.append(pipeline)
            self.pipeline_by_id[pipeline.id] = pipeline
            self.commit("create_pipeline", admin, pipeline)
        for _ in range(max(10, round(8_000 * scale))):
            self.register_account()
        for _ in range(max(20, round(20_000 * scale))):
            self.create_contact()
        for _ in range(max(10, round(12_000 * scale))):
            self.open_deal()

    # ------------------------------------------------------------ helpers

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def sim_time(self) -> datetime:
        """The simulated moment of the current command."""
        done = min(1.0, self.stats.events / self.target)
        return self.start + SPAN * done

    def rep(self) -> User:
        return self.rng.choice(self.reps)

    def owner_of(self, record: Account | Contact | Deal) -> User:
        return self.users.get(record.owner_id) or self.rep()

    def text(self, words: int = 6) -> str:
        return " ".join(self.rng.choices(WORDS, k=words)).capitalize()

    def account(self) -> Account:
        return self.rng.choice(self.accounts)

    def contacts_for(self, account: Account) -> list[Contact]:
        return self.contacts_of.get(account.id) or [self.rng.choice(self.contacts)]

    # ------------------------------------------------------------ users

    def invite(self, by: User | None, role: Role) -> User:
        authority = by.authority if by is not None else Authority.system()
        n = self.next_serial()
        email = f"{role.value}{n}@chronicle.example"
        self.roster = self.roster or OwnerRoster()
        user = User.invite(
            email, f"{role.value.title()} {n}", role, by=authority, owners=self.roster
        )
        key = UniqueKey(scope=USER_EMAIL_SCOPE, key=email, holder_id=user.id)
        token = new_token(user.id)
        user.issue_token(token.token_id, token.token_hash, "first token", by=authority)
        self.users[user.id] = user
        self.commit("invite_user", by, user, key, self.roster)
        return user

    def invite_user(self) -> None:
        self.reps.append(self.invite(self.admins[-1], Role.SALES_REP))

    def grant_role(self) -> None:
        user = self.rep()
        if Role.MANAGER not in user.roles:
            assert self.roster is not None
            user.grant_role(Role.MANAGER, by=self.admins[-1].authority, owners=self.roster)
            self.commit("grant_role", self.admins[-1], user, self.roster)

    def issue_token(self) -> None:
        user = self.rep()
        token = new_token(user.id)
        user.issue_token(token.token_id, token.token_hash, "laptop", by=user.authority)
        self.commit("issue_token", user, user)

    # ------------------------------------------------------------ pipelines

    def change_pipeline(self) -> None:
        pipeline = self.rng.choice(self.pipelines)
        stage = self.rng.choice(pipeline.stages)
        if self.rng.random() < 0.5:
            pipeline.reweight_stage(stage.id, min(100, stage.probability + 5))
        else:
            pipeline.rename_stage(stage.id, f"{stage.name.split(' #')[0]} #{self.next_serial()}")
        self.commit("change_pipeline", self.admins[-1], pipeline)

    # ------------------------------------------------------------ accounts

    def register_account(self) -> None:
        rng, n = self.rng, self.next_serial()
        actor = self.rep()
        parent = self.account() if self.accounts and rng.random() < 0.25 else None
        account = Account.register(
            name=f"{rng.choice(LAST)} {rng.choice(INDUSTRIES)} {n}",
            owner_id=actor.id,
            website=f"www.company{n}.example",
            industry=rng.choice(INDUSTRIES),
            country=rng.choice(COUNTRIES),
            address=f"{n} Main Street" if rng.random() < 0.6 else None,
            parent=parent,
        )
        self.accounts.append(account)
        self.account_by_id[account.id] = account
        self.commit("register_account", actor, account)

    def update_account(self) -> None:
        account = self.account()
        account.change_details(
            name=account.name,
            website=account.website,
            industry=self.rng.choice(INDUSTRIES),
            country=account.country,
            address=f"{self.next_serial()} Market Square",
        )
        self.commit("update_account", self.owner_of(account), account)

    def reassign_account(self) -> None:
        account = self.account()
        account.reassign(self.rep().id)
        self.commit("reassign_account", self.admins[-1], account)

    def ancestry(self, account: Account) -> list[uuid.UUID]:
        ids: list[uuid.UUID] = []
        parent_id = account.parent_id
        while parent_id is not None and parent_id not in ids:
            ids.append(parent_id)
            parent_id = self.account_by_id[parent_id].parent_id
        return ids

    def move_account(self) -> None:
        account = self.account()
        parent = self.account() if self.rng.random() < 0.8 else None
        self.hierarchy = self.hierarchy or Hierarchy()
        before = account.version
        try:
            account.move_under(parent, self.ancestry(parent) if parent else [])
        except AccountHierarchyCycleError:
            return  # refused, as the command would be: nothing written
        if account.version != before:
            self.hierarchy.record(account)
            self.commit("move_account", self.owner_of(account), account, self.hierarchy)

    def archive_account(self) -> None:
        if len(self.accounts) < 20:
            return
        account = _pop(self.accounts, self.rng.randrange(len(self.accounts)))
        account.archive()
        self.archived.append(account)
        self.commit("archive_account", self.owner_of(account), account)

    def restore_account(self) -> None:
        if self.archived:
            account = _pop(self.archived, self.rng.randrange(len(self.archived)))
            account.restore()
            self.accounts.append(account)
            self.commit("restore_account", self.owner_of(account), account)

    # ------------------------------------------------------------ contacts

    def create_contact(self) -> None:
        rng, n = self.rng, self.next_serial()
        actor = self.rep()
        account = self.account() if rng.random() < 0.9 else None
        first, last = rng.choice(FIRST), rng.choice(LAST)
        emails = [f"{first.lower()}.{n}@company{n % 997}.example"]
        if rng.random() < 0.3:
            emails.append(f"{first.lower()}{n}@mail.example")
        contact = Contact.create(
            first_name=first,
            last_name=last,
            owner_id=actor.id,
            emails=emails,
            phones=[f"+49 30 {n:07d}"] if rng.random() < 0.7 else [],
            job_title=rng.choice(TITLES),
            account_id=account.id if account else None,
            tags=rng.sample(TAGS, rng.randrange(3)),
            lifecycle_stage=rng.choice((LifecycleStage.LEAD, LifecycleStage.SUBSCRIBER)),
        )
        keys = [self.email_key(e, contact) for e in contact.emails]
        self.keys.update((k.key, k) for k in keys)
        self.contacts.append(contact)
        if account is not None:
            self.contacts_of.setdefault(account.id, []).append(contact)
        self.commit("create_contact", actor, contact, *keys)

    def contact(self) -> Contact:
        return self.rng.choice(self.contacts)

    def email_key(self, email: str, contact: Contact) -> UniqueKey:
        """A new e-mail key, at its keyed id, as ``commands/contacts.py`` makes one."""
        key_id = self.crm.email_key_id(email)
        return UniqueKey.create(scope=EMAIL_SCOPE, holder_id=contact.id, id=key_id)

    def update_contact(self) -> None:
        contact = self.contact()
        contact.change_details(
            first_name=contact.first_name,
            last_name=contact.last_name,
            phones=[*contact.phones, f"+49 89 {self.next_serial():07d}"][-2:],
            job_title=self.rng.choice(TITLES),
        )
        self.commit("update_contact", self.owner_of(contact), contact)

    def change_contact_emails(self) -> None:
        contact = self.contact()
        new = f"{contact.first_name.lower()}.{self.next_serial()}@newjob.example"
        added, removed = contact.change_emails([new, *contact.emails[:1]])
        keys: list[UniqueKey] = []
        for email in added:
            key = self.email_key(email, contact)
            self.keys[email] = key
            keys.append(key)
        for email in removed:
            released = self.keys.get(email)
            if released is not None:
                released.release(contact.id)
                keys.append(released)
        self.commit("change_contact_emails", self.owner_of(contact), contact, *keys)

    def tag_contact(self) -> None:
        contact = self.contact()
        contact.tag(self.rng.choice(TAGS))
        self.commit("tag_contact", self.owner_of(contact), contact)

    def untag_contact(self) -> None:
        contact = self.contact()
        if contact.tags:
            contact.untag(self.rng.choice(contact.tags))
            self.commit("untag_contact", self.owner_of(contact), contact)

    def change_lifecycle_stage(self) -> None:
        contact = self.contact()
        contact.change_lifecycle_stage(self.rng.choice(list(LifecycleStage)))
        self.commit("change_lifecycle_stage", self.owner_of(contact), contact)

    def link_contact(self) -> None:
        contact, account = self.contact(), self.account()
        if contact.account_id != account.id:
            old = self.contacts_of.get(contact.account_id) if contact.account_id else None
            if old is not None and contact in old:
                old.remove(contact)
            self.contacts_of.setdefault(account.id, []).append(contact)
        contact.link_account(account.id)
        self.commit("link_contact", self.owner_of(contact), contact)

    def reassign_contact(self) -> None:
        contact = self.contact()
        contact.reassign(self.rep().id)
        self.commit("reassign_contact", self.admins[-1], contact)

    # ------------------------------------------------------------ deals

    def open_deal(self) -> None:
        rng = self.rng
        actor = self.rep()
        account = self.account()
        pipeline = self.pipelines[min(2, int(rng.paretovariate(1.6)) - 1)]
        contacts = rng.sample(self.contacts_for(account), 1)
        close = self.sim_time().date() + timedelta(days=rng.randrange(14, 180))
        deal = Deal.open(
            title=f"{account.name}: {rng.choice(WORDS)}",
            value=Money(Decimal(f"{rng.randrange(1, 500) * 500}.00"), rng.choice(CURRENCIES)),
            pipeline=pipeline,
            owner_id=actor.id,
            stage=None,
            account_id=account.id,
            contact_ids=[c.id for c in contacts],
            expected_close_date=close if rng.random() < 0.8 else None,
        )
        self.open_deals.append(deal)
        self.commit("open_deal", actor, deal)

    def open_deals_in(self, pipeline: Pipeline, count: int) -> None:
        """Open ``count`` more deals in ``pipeline``, in stages spread over it (as
        ``OpenDeal`` with a ``stage`` does), and write them."""
        rng = self.rng
        for _ in range(count):
            actor, account = self.rep(), self.account()
            deal = Deal.open(
                title=f"{account.name}: {rng.choice(WORDS)}",
                value=Money(Decimal(f"{rng.randrange(1, 500) * 500}.00"), rng.choice(CURRENCIES)),
                pipeline=pipeline,
                owner_id=actor.id,
                stage=rng.choice(pipeline.stages).name,
                account_id=account.id,
                contact_ids=[c.id for c in rng.sample(self.contacts_for(account), 1)],
                expected_close_date=self.now.date() + timedelta(days=rng.randrange(14, 180)),
            )
            self.open_deals.append(deal)
            self.commit("open_deal", actor, deal)
        self.flush()

    def a_deal(self) -> Deal | None:
        return self.rng.choice(self.open_deals) if self.open_deals else None

    def move_deal(self) -> None:
        deal = self.a_deal()
        if deal is None:
            return
        pipeline = self.pipeline_by_id[deal.pipeline_id]
        ids = [s.id for s in pipeline.stages]
        here = ids.index(deal.stage_id)
        step = 1 if self.rng.random() < 0.8 or here == 0 else -1
        target = pipeline.stages[min(len(ids) - 1, here + step)]
        if target.id == deal.stage_id:
            target = pipeline.stages[here - 1]
        deal.move_to(target.name, pipeline)
        self.commit("move_deal", self.owner_of(deal), deal)

    def update_deal(self) -> None:
        deal = self.a_deal()
        if deal is None:
            return
        choice = self.rng.randrange(4)
        if choice == 0:
            deal.change_value(Money(deal.amount + Decimal("250.00"), deal.currency))
        elif choice == 1:
            base = deal.expected_close_date or self.sim_time().date()
            deal.change_close_date(base + timedelta(days=self.rng.randrange(7, 60)))
        elif choice == 2:
            deal.retitle(f"{deal.title.split(' (')[0]} ({self.rng.choice(WORDS)})")
        else:
            deal.change_contacts([*deal.contact_ids, self.contact().id][-3:])
        self.commit("update_deal", self.owner_of(deal), deal)

    def reassign_deal(self) -> None:
        deal = self.a_deal()
        if deal is not None:
            deal.reassign(self.rep().id)
            self.commit("reassign_deal", self.admins[-1], deal)

    def close_deal(self, won: bool) -> None:
        if not self.open_deals:
            return
        deal = _pop(self.open_deals, self.rng.randrange(len(self.open_deals)))
        if won:
            deal.win(self.rng.choice(("", "best price", "strong champion", "fast rollout")))
        else:
            deal.lose(self.rng.choice(("", "no budget", "went with competitor", "timing")))
        self.closed_deals.append(deal)
        self.commit("win_deal" if won else "lose_deal", self.owner_of(deal), deal)

    def win_deal(self) -> None:
        self.close_deal(True)

    def lose_deal(self) -> None:
        self.close_deal(False)

    def reopen_deal(self) -> None:
        if self.closed_deals:
            deal = self.closed_deals.popleft()
            deal.reopen(self.pipeline_by_id[deal.pipeline_id], None)
            self.open_deals.append(deal)
            self.commit("reopen_deal", self.owner_of(deal), deal)

    # ------------------------------------------------------------ interactions

    def occurred_at(self, within: timedelta = timedelta(days=2)) -> datetime:
        moment = self.sim_time() - within * self.rng.random()
        return min(moment, self.now).replace(microsecond=0)

    def log(self, kind: InteractionKind, **details: Any) -> None:
        rng = self.rng
        actor = self.rep()
        deal = self.a_deal() if rng.random() < 0.6 else None
        if deal is not None and deal.account_id is not None:
            account = self.account_by_id[deal.account_id]
        else:
            account = self.account()
        people = self.contacts_for(account)
        contacts = rng.sample(people, min(len(people), 1 + (rng.random() < 0.2)))
        interaction = Interaction.log(
            kind=kind,
            occurred_at=details.pop("occurred_at", None) or self.occurred_at(),
            now=datetime.now(UTC),
            logged_by=actor.id,
            contact_ids=[c.id for c in contacts],
            account_id=account.id if rng.random() < 0.7 else None,
            deal_id=deal.id if deal is not None else None,
            **details,
        )
        self.recent.append(interaction)
        self.commit(f"log_{kind.value}", actor, interaction)

    def direction(self) -> Direction:
        return Direction.OUTBOUND if self.rng.random() < 0.65 else Direction.INBOUND

    def log_call(self) -> None:
        self.log(
            InteractionKind.CALL,
            direction=self.direction(),
            duration_seconds=self.rng.randrange(15, 3600),
            outcome=self.rng.choice(list(CallOutcome)),
            notes=self.text(),
        )

    def log_email(self) -> None:
        self.log(
            InteractionKind.EMAIL,
            direction=self.direction(),
            subject=f"Re: {self.rng.choice(WORDS)}",
            body=self.text(40),
        )

    def log_meeting(self) -> None:
        starts = self.occurred_at(timedelta(days=7))
        self.log(
            InteractionKind.MEETING,
            occurred_at=starts,
            ends_at=starts + timedelta(minutes=self.rng.choice((30, 45, 60, 90))),
            title=f"{self.rng.choice(WORDS).capitalize()} meeting",
            attendees=[f"guest{self.rng.randrange(999)}@partner.example"],
            notes=self.text(12),
        )

    def log_note(self) -> None:
        self.log(InteractionKind.NOTE, body=self.text(20))

    def log_sms(self) -> None:
        self.log(InteractionKind.SMS, direction=self.direction(), body=self.text(8))

    def an_interaction(self) -> Interaction | None:
        while self.recent:
            interaction = self.recent[self.rng.randrange(len(self.recent))]
            if not interaction.retracted:
                return interaction
            self.recent.remove(interaction)
        return None

    def logger_of(self, interaction: Interaction) -> User:
        by = interaction.logged_by
        return self.users[by] if by is not None else self.rep()

    def correct_interaction(self) -> None:
        interaction = self.an_interaction()
        if interaction is None:
            return
        kind = interaction.kind
        if self.rng.random() < 0.3:
            changes: dict[str, Any] = {"occurred_at": interaction.occurred_at - timedelta(hours=1)}
        elif kind is InteractionKind.CALL:
            changes = {"duration_seconds": self.rng.randrange(15, 3600), "notes": self.text()}
        elif kind is InteractionKind.EMAIL:
            changes = {"subject": f"Re: {self.text(3)}"}
        elif kind is InteractionKind.MEETING:
            ends_at = interaction.details["ends_at"] + timedelta(minutes=15)
            changes = {"ends_at": ends_at, "title": self.text(3)}
        else:
            changes = {"body": self.text(10)}
        interaction.correct(changes, now=datetime.now(UTC))
        self.commit("correct_interaction", self.logger_of(interaction), interaction)

    def retract_interaction(self) -> None:
        interaction = self.an_interaction()
        if interaction is not None:
            interaction.retract(self.rng.choice(("logged twice", "wrong contact", "test entry")))
            self.commit("retract_interaction", self.logger_of(interaction), interaction)

    # ------------------------------------------------------------ tasks

    def create_task(self) -> None:
        rng = self.rng
        actor = self.rep()
        deal = self.a_deal()
        linked: tuple[RecordKind | None, uuid.UUID | None] = (None, None)
        roll = rng.random()
        if roll < 0.5 and deal is not None:
            linked = (RecordKind.DEAL, deal.id)
        elif roll < 0.8:
            linked = (RecordKind.CONTACT, self.contact().id)
        elif roll < 0.9:
            linked = (RecordKind.ACCOUNT, self.account().id)
        due = self.sim_time() + timedelta(days=rng.randrange(1, 21), hours=rng.randrange(24))
        task = Task.create(
            title=f"Follow up: {rng.choice(WORDS)}",
            assignee_id=actor.id if rng.random() < 0.8 else self.rep().id,
            created_by=actor.id,
            due_at=due.replace(minute=0, second=0) if rng.random() < 0.9 else None,
            linked_kind=linked[0],
            linked_id=linked[1],
        )
        self.open_tasks.append(task)
        self.commit("create_task", actor, task)

    def a_task(self) -> Task | None:
        return self.rng.choice(self.open_tasks) if self.open_tasks else None

    def complete_task(self) -> None:
        if self.open_tasks:
            task = _pop(self.open_tasks, self.rng.randrange(len(self.open_tasks)))
            assignee = self.users[task.assignee_id]
            task.complete(assignee.id)
            self.done_tasks.append(task)
            self.commit("complete_task", assignee, task)

    def update_task(self) -> None:
        task = self.a_task()
        if task is not None:
            base = task.due_at or self.sim_time()
            task.change_due(base + timedelta(days=self.rng.randrange(1, 7)))
            self.commit("update_task", self.users[task.assignee_id], task)

    def assign_task(self) -> None:
        task = self.a_task()
        if task is not None:
            task.reassign(self.rep().id)
            self.commit("assign_task", self.users[task.assignee_id], task)

    def reopen_task(self) -> None:
        if self.done_tasks:
            task = self.done_tasks.popleft()
            task.reopen(task.assignee_id)
            self.open_tasks.append(task)
            self.commit("reopen_task", self.users[task.assignee_id], task)
