"""Accounts: registration, details, owner, the parent hierarchy, archiving."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from domain.account import (
    Account,
    AccountArchivedError,
    AccountError,
    AccountHierarchyCycleError,
    Hierarchy,
    hierarchy_id,
)
from domain.errors import InvalidValueError, StateConflictError
from tests.domain.helpers import assert_no_new_events, given, only_event, refused

OWNER = uuid4()


def an_account(name: str = "Acme", parent: Account | None = None) -> Account:
    return given(
        Account.register(
            name,
            owner_id=OWNER,
            website="https://acme.example",
            industry="Tools",
            country="DE",
            address="Berlin",
            parent=parent,
        )
    )


def archived(account: Account) -> Account:
    account.archive()
    return given(account)


# --- register -------------------------------------------------------------------


def test_registering_an_account_records_its_details() -> None:
    account = Account.register(
        "  Acme  ",
        owner_id=OWNER,
        website="https://acme.example",
        industry="Tools",
        country="DE",
        address="Berlin",
    )

    registered = only_event(account, Account.Registered)
    assert registered.name == "Acme"
    assert registered.website == "https://acme.example"
    assert registered.industry == "Tools"
    assert registered.country == "DE"
    assert registered.address == "Berlin"
    assert registered.owner_id == OWNER
    assert registered.parent_id is None
    assert not account.archived


def test_an_account_needs_nothing_but_a_name_and_an_owner() -> None:
    account = Account.register("Acme", owner_id=OWNER)

    registered = only_event(account, Account.Registered)
    assert (registered.website, registered.industry, registered.country) == (None, None, None)


def test_an_account_can_be_registered_under_a_parent() -> None:
    parent = an_account("Acme Group")

    account = Account.register("Acme Berlin", owner_id=OWNER, parent=parent)

    assert only_event(account, Account.Registered).parent_id == parent.id


def test_an_account_cannot_be_registered_under_an_archived_parent() -> None:
    parent = archived(an_account("Acme Group"))

    with pytest.raises(AccountArchivedError):
        Account.register("Acme Berlin", owner_id=OWNER, parent=parent)


@pytest.mark.parametrize("country", ["de", "DEU", "D", "D1", "", " DE"])
def test_an_account_country_must_be_an_iso_alpha_2_code(country: str) -> None:
    with pytest.raises(InvalidValueError, match="ISO 3166"):
        Account.register("Acme", owner_id=OWNER, country=country)


@pytest.mark.parametrize("website", ["acme example.com", "https://" + "a" * 250 + ".com"])
def test_an_account_website_must_look_like_an_address(website: str) -> None:
    with pytest.raises(InvalidValueError, match="website"):
        Account.register("Acme", owner_id=OWNER, website=website)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_an_account_name_must_be_present_and_not_too_long(name: str) -> None:
    with pytest.raises(InvalidValueError, match="name"):
        Account.register(name, owner_id=OWNER)


# --- details --------------------------------------------------------------------


def test_changing_details_records_the_new_details() -> None:
    account = an_account()

    account.change_details("Acme SE", "https://acme.example", "Machinery", "FR", "Paris")

    changed = only_event(account, Account.DetailsChanged)
    assert (changed.name, changed.industry, changed.country, changed.address) == (
        "Acme SE",
        "Machinery",
        "FR",
        "Paris",
    )
    assert account.country == "FR"


def test_changing_details_to_the_current_values_records_nothing() -> None:
    account = an_account()

    account.change_details(" Acme ", "https://acme.example", "Tools", "DE", "Berlin")

    assert_no_new_events(account)


def test_changing_details_refuses_a_country_that_is_not_alpha_2() -> None:
    account = an_account()

    with refused(InvalidValueError, account):
        account.change_details("Acme", None, None, "Germany", None)
    assert account.country == "DE"


def test_changing_details_refuses_a_website_with_spaces() -> None:
    account = an_account()

    with refused(InvalidValueError, account):
        account.change_details("Acme", "acme .com", None, None, None)


# --- owner ----------------------------------------------------------------------


def test_reassigning_an_account_records_the_new_and_previous_owner() -> None:
    account = an_account()
    new_owner = uuid4()

    account.reassign(new_owner)

    changed = only_event(account, Account.OwnerChanged)
    assert (changed.owner_id, changed.previous) == (new_owner, OWNER)


def test_reassigning_an_account_to_its_owner_records_nothing() -> None:
    account = an_account()

    account.reassign(OWNER)

    assert_no_new_events(account)


# --- hierarchy ------------------------------------------------------------------


def test_moving_an_account_under_a_parent_records_the_new_and_previous_parent() -> None:
    group = an_account("Acme Group")
    account = an_account("Acme Berlin")

    account.move_under(group, parent_ancestry=[])

    changed = only_event(account, Account.ParentChanged)
    assert (changed.parent_id, changed.previous) == (group.id, None)


def test_moving_an_account_to_the_top_level_records_the_previous_parent() -> None:
    group = an_account("Acme Group")
    account = an_account("Acme Berlin", parent=group)

    account.move_under(None, parent_ancestry=[])

    changed = only_event(account, Account.ParentChanged)
    assert (changed.parent_id, changed.previous) == (None, group.id)


def test_moving_an_account_under_its_current_parent_records_nothing() -> None:
    group = an_account("Acme Group")
    account = an_account("Acme Berlin", parent=group)

    account.move_under(group, parent_ancestry=[])

    assert_no_new_events(account)


def test_an_account_cannot_sit_under_itself() -> None:
    account = an_account()

    with refused(AccountHierarchyCycleError, account):
        account.move_under(account, parent_ancestry=[])


def test_an_account_cannot_sit_under_its_own_child() -> None:
    group = an_account("Acme Group")
    child = an_account("Acme Berlin", parent=group)

    with refused(AccountHierarchyCycleError, group, child):
        group.move_under(child, parent_ancestry=[group.id])


def test_an_account_cannot_sit_under_a_deeper_descendant() -> None:
    group = an_account("Acme Group")
    child = an_account("Acme Germany", parent=group)
    grandchild = an_account("Acme Berlin", parent=child)

    with refused(AccountHierarchyCycleError, group, grandchild):
        group.move_under(grandchild, parent_ancestry=[child.id, group.id])


def test_an_account_may_move_under_an_unrelated_branch() -> None:
    group = an_account("Acme Group")
    child = an_account("Acme Germany", parent=group)
    other = an_account("Other Group")

    child.move_under(other, parent_ancestry=[])

    assert only_event(child, Account.ParentChanged).parent_id == other.id


def test_an_account_cannot_move_under_an_archived_parent() -> None:
    account = an_account("Acme Berlin")
    group = archived(an_account("Acme Group"))

    with refused(AccountArchivedError, account):
        account.move_under(group, parent_ancestry=[])


def test_a_cycle_is_a_state_conflict() -> None:
    assert issubclass(AccountHierarchyCycleError, StateConflictError)


def test_the_hierarchy_records_every_parent_set() -> None:
    hierarchy = Hierarchy()
    assert hierarchy.id == hierarchy_id() == Hierarchy.create_id()
    given(hierarchy)
    group = an_account("Acme Group")
    account = an_account("Acme Berlin")
    account.move_under(group, parent_ancestry=[])

    hierarchy.record(account)

    recorded = only_event(hierarchy, Hierarchy.ParentSet)
    assert (recorded.account_id, recorded.parent_id) == (account.id, group.id)


def test_the_hierarchy_records_a_move_to_the_top_level() -> None:
    hierarchy = given(Hierarchy())
    account = an_account("Acme Berlin", parent=an_account("Acme Group"))
    account.move_under(None, parent_ancestry=[])

    hierarchy.record(account)

    recorded = only_event(hierarchy, Hierarchy.ParentSet)
    assert (recorded.account_id, recorded.parent_id) == (account.id, None)


# --- archive and restore --------------------------------------------------------


def test_archiving_an_account_records_it() -> None:
    account = an_account()

    account.archive()

    only_event(account, Account.Archived)
    assert account.archived


CHANGES: dict[str, Callable[[Account], None]] = {
    "details": lambda a: a.change_details("Acme SE", None, None, None, None),
    "owner": lambda a: a.reassign(uuid4()),
    "parent": lambda a: a.move_under(an_account("Acme Group"), parent_ancestry=[]),
    "to top level": lambda a: a.move_under(None, parent_ancestry=[]),
    "archive again": lambda a: a.archive(),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_an_archived_account_refuses_changes(change: Callable[[Account], None]) -> None:
    account = archived(an_account("Acme Berlin", parent=an_account("Acme Group")))

    with refused(AccountArchivedError, account, match="archived"):
        change(account)


def test_restoring_an_archived_account_records_it() -> None:
    account = archived(an_account())

    account.restore()

    only_event(account, Account.Restored)
    assert not account.archived


def test_only_an_archived_account_can_be_restored() -> None:
    account = an_account()

    with refused(AccountError, account, match="not archived"):
        account.restore()


def test_a_restored_account_accepts_changes_again() -> None:
    account = archived(an_account())
    account.restore()
    given(account)
    new_owner: UUID = uuid4()

    account.reassign(new_owner)

    assert only_event(account, Account.OwnerChanged).owner_id == new_owner
