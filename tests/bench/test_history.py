"""The benchmark's CRM history is made of real events: every aggregate it wrote replays
from the store to the state the history holds, and every command carries its own
metadata."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from bench.history import History
from commands.app import Crm
from commands.persistence import Meta

#: Events the history must write at this size (each drawn often enough to be certain).
EXPECTED = {
    "User.Invited",
    "User.RoleGranted",
    "User.TokenIssued",
    "OwnerRoster.OwnerAdded",
    "Pipeline.Created",
    "Account.Registered",
    "Account.DetailsChanged",
    "Account.OwnerChanged",
    "Account.ParentChanged",
    "Hierarchy.ParentSet",
    "Account.Archived",
    "Contact.Created",
    "UniqueKey.Claimed",
    "Contact.Tagged",
    "Contact.LifecycleStageChanged",
    "Contact.DetailsChanged",
    "Contact.AccountChanged",
    "Deal.Opened",
    "Deal.StageChanged",
    "Deal.AmountChanged",
    "Deal.CloseDateChanged",
    "Deal.Retitled",
    "Deal.ContactsChanged",
    "Deal.OwnerChanged",
    "Deal.Won",
    "Deal.Lost",
    "Deal.Reopened",
    "Interaction.CallLogged",
    "Interaction.EmailLogged",
    "Interaction.MeetingLogged",
    "Interaction.NoteLogged",
    "Interaction.SmsLogged",
    "Interaction.Corrected",
    "Interaction.Retracted",
    "Task.Created",
    "Task.Completed",
    "Task.DueChanged",
    "Task.Reassigned",
    "Task.Reopened",
}


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k not in ("_modified_on",)}


def test_the_history_replays_to_the_state_it_holds(crm: Crm) -> None:
    history = History(crm, seed=7, batch_events=1_000)
    stats = history.load(12_000)

    notifications = crm.recorder.select_notifications(start=None, limit=100_000)
    assert len(notifications) == stats.events >= 12_000
    names = Counter(n.topic.rpartition(":")[2] for n in notifications)
    assert set(names) >= EXPECTED, sorted(EXPECTED - set(names))

    held: list[Aggregate] = [
        *history.users.values(),
        *history.pipelines,
        *history.account_by_id.values(),
        *history.contacts,
        *history.open_deals,
        *history.closed_deals,
        *history.open_tasks,
        *history.recent,
    ]
    for aggregate in held:
        stored: Aggregate = crm.repository.get(aggregate.id)
        assert stored.version == aggregate.version
        assert state(stored) == state(aggregate)


def test_every_command_carries_its_own_metadata(crm: Crm) -> None:
    history = History(crm, seed=3, batch_events=500)
    stats = history.load(3_000)

    requests: Counter[str] = Counter()
    for notification in crm.recorder.select_notifications(start=None, limit=10_000):
        meta = Meta.of(crm.mapper.to_domain_event(notification))
        assert meta is not None
        requests[meta.request_id] += 1
        if meta.actor != "system":
            assert meta.actor is not None
            assert UUID(hex=meta.actor).hex == meta.actor
            assert meta.source == "api"
    # One request id per command, never one per batch.
    assert len(requests) == stats.commands
