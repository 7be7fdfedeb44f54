"""Erasing a contact, on the read side: every read model fed by its handlers in batches
that start and end anywhere around the erasure, restarted between them or not, or built
in bulk up to any position and carried on by its handlers, equals the read models
rebuilt from zero — which read the contact's earlier events already erased.

The histories are written through the real commands (so the contact's personal fields
are sealed, and its key destroyed with ``Contact.Erased``) and reach what the property
tests draw only now and then: a contact with a job title, changed and then erased; a
contact removed and then erased; an erased contact named by a deal, an interaction and
a task.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from commands.app import Crm
from commands.contacts import CreateContact, EraseContact, RemoveContact, UpdateContact
from commands.context import Payload
from commands.deals import OpenDeal, UpdateDeal
from commands.handlers import execute
from commands.interactions import LogNote
from commands.pipelines import CreatePipeline, StageSpec
from commands.tasks import CreateTask
from domain.contact import ErasureBasis
from domain.task import RecordKind
from projections.bulk import build, has_bulk_path, stage
from projections.registry import PROJECTORS
from projections.runner import Runner
from projections.store import ReadStore
from tests.conftest import Person
from tests.projections.compare import content, differences, owners, rebuild

BULK = {name: make for name, make in PROJECTORS.items() if has_bulk_path(make())}


class Writer:
    """Commands as the Owner, each followed by a turn of the read side (``read``);
    each returns the id of the record it made or changed."""

    def __init__(self, crm: Crm, owner: Person, read: Callable[[], None]) -> None:
        self.crm, self.owner, self.read = crm, owner, read

    def __call__(self, command: Payload) -> UUID:
        receipt = execute(self.crm, command, self.owner.ctx)
        self.read()
        return receipt.id

    def deal(self, contact_ids: list[UUID]) -> UUID:
        stages = [StageSpec(name="Lead", probability=10)]
        pipeline = self(CreatePipeline(name="Sales", stages=stages))
        return self(
            OpenDeal(
                title="Fair deal",
                amount=Decimal("10.00"),
                currency="EUR",
                pipeline_id=pipeline,
                contact_ids=contact_ids,
            )
        )


def a_contact_with_a_job_title_changed_then_erased(write: Writer) -> None:
    contact = write(
        CreateContact(first_name="Zebulon", last_name="", job_title="Chief Mystery Officer")
    )
    write(UpdateContact(contact_id=contact, last_name="Quixotefield", job_title="Sage"))
    write(UpdateContact(contact_id=contact, emails=["zq@example.org"], phones=["+44 7000"]))
    write(UpdateContact(contact_id=contact, job_title=None))
    write(UpdateContact(contact_id=contact, job_title="Oracle"))
    write(EraseContact(contact_id=contact, basis=ErasureBasis.OBJECTION, reference="GDPR-17"))


def a_contact_removed_then_erased(write: Writer) -> None:
    contact = write(
        CreateContact(first_name="Zebulon", last_name="Quixotefield", emails=["zq@example.org"])
    )
    other = write(CreateContact(first_name="Kim", emails=["kim@example.org"]))
    write(UpdateContact(contact_id=contact, job_title="Sage", phones=["+44 7000"]))
    deal = write.deal([other])
    write(UpdateDeal(deal_id=deal, contact_ids=[contact, other]))
    write(RemoveContact(contact_id=contact, reason="left Zebulon's company"))
    write(UpdateDeal(deal_id=deal, title="Fairer deal"))
    write(EraseContact(contact_id=contact, basis=ErasureBasis.CONSENT_WITHDRAWN))
    write(UpdateContact(contact_id=other, last_name="Lee"))


def an_erased_contact_named_by_a_deal_an_interaction_and_a_task(write: Writer) -> None:
    contact = write(CreateContact(first_name="Zebulon", last_name="Quixotefield", job_title="Sage"))
    deal = write.deal([contact])
    write(UpdateDeal(deal_id=deal, contact_ids=[contact]))
    write(UpdateDeal(deal_id=deal, contact_ids=[]))
    write(UpdateDeal(deal_id=deal, contact_ids=[contact]))
    occurred_at = datetime(2026, 1, 5, 10, tzinfo=UTC)
    write(LogNote(occurred_at=occurred_at, contact_ids=[contact], deal_id=deal, body="met"))
    write(CreateTask(title="Call back", linked_kind=RecordKind.CONTACT, linked_id=contact))
    write(UpdateContact(contact_id=contact, first_name="Zeb"))
    write(EraseContact(contact_id=contact, basis=ErasureBasis.OBJECTION, reference="GDPR-17"))
    write(UpdateDeal(deal_id=deal, title="Fairer deal"))


HISTORIES: list[Callable[[Writer], None]] = [
    a_contact_with_a_job_title_changed_then_erased,
    a_contact_removed_then_erased,
    an_erased_contact_named_by_a_deal_an_interaction_and_a_task,
]


#: How the read side is fed after each command: a batch size, how many batches (None:
#: up to the head), and whether the read models restart (reload from their tables).
FEEDS = [(1, 1, False), (1, 2, True), (2, 1, False), (3, 1, True), (5, None, False)]


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.__name__)
def test_read_models_fed_along_an_erasure_equal_a_rebuild_from_zero(
    history: Callable[[Writer], None], crm: Crm, owner: Person, tmp_path: Path
) -> None:
    paths = [tmp_path / f"read-{n}.duckdb" for n in range(len(FEEDS))]
    stores = [ReadStore(path, [make() for make in PROJECTORS.values()]) for path in paths]

    def read() -> None:
        for n, (batch_size, batches, restart) in enumerate(FEEDS):
            runner = Runner(crm.recorder, [stores[n]], batch_size=batch_size)
            if batches is None:
                runner.catch_up()
            for _ in range(batches or 0):
                runner.step()
            if restart:
                stores[n].close()
                stores[n] = ReadStore(paths[n], [make() for make in PROJECTORS.values()])

    try:
        history(Writer(crm, owner, read))
        expected = rebuild(crm.recorder, PROJECTORS)
        for (batch_size, batches, restart), store in zip(FEEDS, stores, strict=True):
            Runner(crm.recorder, [store], batch_size=batch_size).catch_up()
            problems = differences(content([store]), expected, owners(PROJECTORS))
            feed = f"{batches} batches of {batch_size}, restarting: {restart}"
            assert not problems, f"{feed}:\n" + "\n".join(problems)
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.__name__)
def test_read_models_built_in_bulk_along_an_erasure_equal_a_rebuild_from_zero(
    history: Callable[[Writer], None], crm: Crm, owner: Person, tmp_path: Path
) -> None:
    stores: list[ReadStore] = []

    def read() -> None:  # built in bulk up to the head after each command
        store = ReadStore(
            tmp_path / f"bulk-{len(stores)}.duckdb", [make() for make in BULK.values()]
        )
        stores.append(store)
        build(store, stage(crm.recorder))

    try:
        history(Writer(crm, owner, read))
        expected = rebuild(crm.recorder, BULK)
        for store in stores:
            built_at = store.low_position()
            Runner(crm.recorder, [store], batch_size=2).catch_up()
            problems = differences(content([store]), expected, owners(BULK))
            assert not problems, f"built in bulk up to {built_at}:\n" + "\n".join(problems)
    finally:
        for store in stores:
            store.close()
