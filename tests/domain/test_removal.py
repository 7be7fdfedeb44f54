"""Removing accounts, contacts and deals for good: one event, then every change refused."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.account import Account, AccountRemovedError
from domain.contact import Contact, ContactRemovedError, LifecycleStage
from domain.deal import Deal, DealRemovedError
from domain.errors import InvalidValueError, NotPermittedError, RecordRemovedError
from domain.permissions import Action, Resource, check
from domain.pipeline import Pipeline
from domain.roles import Authority, Role
from domain.values import Money
from tests.domain.helpers import given, only_event, refused

OWNER = uuid4()


def an_account() -> Account:
    return given(Account.register("Acme", owner_id=OWNER))


def a_contact() -> Contact:
    return given(Contact.create("Ada", "Lovelace", owner_id=OWNER, emails=["ada@example.com"]))


def a_deal() -> Deal:
    pipeline = given(Pipeline.create("Sales", [("Lead", 10), ("Won", 100)]))
    return given(Deal.open("Big", Money(Decimal("10.00"), "EUR"), pipeline, owner_id=OWNER))


def test_removing_an_account_records_the_reason() -> None:
    account = an_account()
    account.remove("  duplicate ")
    assert only_event(account, Account.Removed).reason == "duplicate"
    assert account.removed


def test_removing_a_contact_hands_back_its_emails_to_release() -> None:
    contact = a_contact()
    assert contact.remove("gdpr") == ["ada@example.com"]
    assert only_event(contact, Contact.Removed).reason == "gdpr"


def test_removing_a_deal_records_the_reason() -> None:
    deal = a_deal()
    deal.remove()
    assert only_event(deal, Deal.Removed).reason == ""


def test_a_removed_account_refuses_every_change() -> None:
    account = an_account()
    account.remove()
    account = given(account)
    changes: list[Callable[[], object]] = [
        lambda: account.change_details("New", None, None, None, None),
        lambda: account.reassign(uuid4()),
        lambda: account.move_under(None, []),
        account.archive,
        account.restore,
        account.remove,
        lambda: Account.register("Child", owner_id=OWNER, parent=account),
    ]
    for change in changes:
        with refused(AccountRemovedError, account):
            change()


def test_a_removed_contact_refuses_every_change() -> None:
    contact = a_contact()
    contact.remove()
    contact = given(contact)
    changes: list[Callable[[], object]] = [
        lambda: contact.change_details("Ada", "King", [], None),
        lambda: contact.change_emails([]),
        lambda: contact.link_account(uuid4()),
        lambda: contact.reassign(uuid4()),
        lambda: contact.tag("vip"),
        lambda: contact.untag("vip"),
        lambda: contact.change_lifecycle_stage(LifecycleStage.CUSTOMER),
        contact.remove,
    ]
    for change in changes:
        with refused(ContactRemovedError, contact):
            change()


def test_a_removed_deal_refuses_every_change_open_or_closed() -> None:
    pipeline = given(Pipeline.create("Sales", [("Lead", 10), ("Won", 100)]))
    deal = given(Deal.open("Big", Money(Decimal("10.00"), "EUR"), pipeline, owner_id=OWNER))
    deal.win("signed")
    deal.remove()
    deal = given(deal)
    changes: list[Callable[[], object]] = [
        lambda: deal.reopen(pipeline),
        lambda: deal.move_to("Won", pipeline),
        lambda: deal.change_contacts([uuid4()]),
        lambda: deal.win("again"),
        deal.remove,
    ]
    for change in changes:
        with refused(DealRemovedError, deal):
            change()


def test_removed_errors_share_one_family() -> None:
    assert issubclass(AccountRemovedError, RecordRemovedError)
    assert issubclass(ContactRemovedError, RecordRemovedError)
    assert issubclass(DealRemovedError, RecordRemovedError)


def test_a_reason_is_at_most_a_thousand_characters() -> None:
    deal = a_deal()
    with refused(InvalidValueError, deal):
        deal.remove("x" * 1001)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.SALES_REP, False),
        (Role.AUDITOR, False),
        (Role.MANAGER, True),
        (Role.SENIOR_MANAGER, True),
        (Role.ADMIN, True),
        (Role.OWNER, True),
    ],
)
def test_managers_and_above_may_remove_their_own(role: Role, allowed: bool) -> None:
    authority = Authority(uuid4(), frozenset({role}))
    for resource in (Resource.ACCOUNT, Resource.CONTACT, Resource.DEAL):
        if allowed:
            check(authority, resource, Action.REMOVE, authority.user_id)
        else:
            with pytest.raises(NotPermittedError):
                check(authority, resource, Action.REMOVE, authority.user_id)
