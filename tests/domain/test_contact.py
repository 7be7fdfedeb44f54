"""Contacts: e-mails, tags, lifecycle, links; and the unique e-mail keys."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.contact import EMAIL_SCOPE, Contact, LifecycleStage, TagNotPresentError
from domain.errors import InvalidValueError, StateConflictError
from domain.index import KeyTakenError, UniqueKey
from domain.values import key_id
from tests.domain.helpers import assert_no_new_events, event_types, given, only_event, refused

OWNER = uuid4()


def ann() -> Contact:
    contact = Contact.create(
        "Ann",
        "Lee",
        owner_id=OWNER,
        emails=["ann@example.com"],
        phones=["+49 30 1234"],
        tags=["vip"],
    )
    return given(contact)


# --- create ---------------------------------------------------------------------


def test_creating_a_contact_normalises_and_deduplicates_its_emails() -> None:
    contact = Contact.create(
        " Ann ",
        " Lee ",
        owner_id=OWNER,
        emails=[" Ann@Example.COM ", "ann@example.com", "ann.lee@example.org"],
    )

    created = only_event(contact, Contact.Created)
    assert created.emails == ["ann@example.com", "ann.lee@example.org"]
    assert (created.first_name, created.last_name) == ("Ann", "Lee")
    assert created.owner_id == OWNER
    assert created.lifecycle_stage is LifecycleStage.LEAD


def test_creating_a_contact_normalises_and_deduplicates_its_tags() -> None:
    contact = Contact.create("Ann", "Lee", owner_id=OWNER, tags=[" VIP ", "vip", "Partner"])

    assert only_event(contact, Contact.Created).tags == ["vip", "partner"]


def test_creating_a_contact_drops_blank_phones() -> None:
    contact = Contact.create("Ann", "Lee", owner_id=OWNER, phones=[" +49 30 1 ", "  "])

    assert only_event(contact, Contact.Created).phones == ["+49 30 1"]


@pytest.mark.parametrize("email", ["ann", "ann@", "ann@example", "ann lee@example.com", ""])
def test_a_contact_email_must_be_an_address(email: str) -> None:
    with pytest.raises(InvalidValueError, match="e-mail"):
        Contact.create("Ann", "Lee", owner_id=OWNER, emails=[email])


@pytest.mark.parametrize("tag", ["", "   ", "x" * 51])
def test_a_tag_has_one_to_fifty_characters(tag: str) -> None:
    with pytest.raises(InvalidValueError, match="tag"):
        Contact.create("Ann", "Lee", owner_id=OWNER, tags=[tag])


def test_a_contact_needs_a_first_name() -> None:
    with pytest.raises(InvalidValueError, match="first name"):
        Contact.create("  ", "Lee", owner_id=OWNER)


# --- details and e-mails --------------------------------------------------------


def test_changing_details_records_the_new_details() -> None:
    contact = ann()

    contact.change_details("Anne", "Lee-Smith", ["+49 30 9999", " "], "CTO")

    changed = only_event(contact, Contact.DetailsChanged)
    assert (changed.first_name, changed.last_name, changed.phones, changed.job_title) == (
        "Anne",
        "Lee-Smith",
        ["+49 30 9999"],
        "CTO",
    )


def test_changing_details_to_the_current_values_records_nothing() -> None:
    contact = ann()

    contact.change_details(" Ann", "Lee ", ["+49 30 1234"], None)

    assert_no_new_events(contact)


def test_changing_emails_records_them_and_reports_what_was_added_and_removed() -> None:
    contact = ann()

    added, removed = contact.change_emails(["ANN.LEE@example.org", "ann.lee@example.org"])

    changed = only_event(contact, Contact.EmailsChanged)
    assert changed.emails == ["ann.lee@example.org"]
    assert changed.previous == ["ann@example.com"]
    assert (added, removed) == (["ann.lee@example.org"], ["ann@example.com"])


def test_changing_emails_to_the_same_addresses_records_nothing() -> None:
    contact = ann()

    added, removed = contact.change_emails([" ANN@example.com "])

    assert_no_new_events(contact)
    assert (added, removed) == ([], [])


def test_changing_emails_refuses_an_invalid_address() -> None:
    contact = ann()

    with refused(InvalidValueError, contact):
        contact.change_emails(["ann@example.com", "not an address"])


# --- tags -----------------------------------------------------------------------


def test_tagging_a_contact_records_the_normalised_tag() -> None:
    contact = ann()

    contact.tag("  Partner ")

    assert only_event(contact, Contact.Tagged).tag == "partner"
    assert contact.tags == ["vip", "partner"]


def test_tagging_a_contact_with_a_tag_it_has_records_nothing() -> None:
    contact = ann()

    contact.tag("VIP")

    assert_no_new_events(contact)


def test_untagging_a_contact_records_the_removed_tag() -> None:
    contact = ann()

    contact.untag(" VIP ")

    assert only_event(contact, Contact.Untagged).tag == "vip"
    assert contact.tags == []


def test_a_tag_the_contact_does_not_have_cannot_be_removed() -> None:
    contact = ann()

    with refused(TagNotPresentError, contact, match="not tagged 'partner'"):
        contact.untag("Partner")


def test_a_blank_tag_is_refused() -> None:
    contact = ann()

    with refused(InvalidValueError, contact):
        contact.tag(" ")


# --- lifecycle, account, owner --------------------------------------------------


def test_changing_the_lifecycle_stage_records_the_new_and_previous_stage() -> None:
    contact = ann()

    contact.change_lifecycle_stage(LifecycleStage.CUSTOMER)

    changed = only_event(contact, Contact.LifecycleStageChanged)
    assert (changed.stage, changed.previous) == (LifecycleStage.CUSTOMER, LifecycleStage.LEAD)


def test_changing_to_the_current_lifecycle_stage_records_nothing() -> None:
    contact = ann()

    contact.change_lifecycle_stage(LifecycleStage.LEAD)

    assert_no_new_events(contact)


def test_linking_a_contact_to_an_account_records_it() -> None:
    contact = ann()
    account_id = uuid4()

    contact.link_account(account_id)

    changed = only_event(contact, Contact.AccountChanged)
    assert (changed.account_id, changed.previous) == (account_id, None)


def test_unlinking_a_contact_from_its_account_records_the_previous_account() -> None:
    contact = ann()
    account_id = uuid4()
    contact.link_account(account_id)
    given(contact)

    contact.link_account(None)

    changed = only_event(contact, Contact.AccountChanged)
    assert (changed.account_id, changed.previous) == (None, account_id)


def test_linking_a_contact_to_its_current_account_records_nothing() -> None:
    contact = ann()

    contact.link_account(None)

    assert_no_new_events(contact)


def test_reassigning_a_contact_records_the_new_and_previous_owner() -> None:
    contact = ann()
    new_owner = uuid4()

    contact.reassign(new_owner)
    contact.reassign(new_owner)

    changed = only_event(contact, Contact.OwnerChanged)
    assert (changed.owner_id, changed.previous) == (new_owner, OWNER)


# --- unique e-mail keys ---------------------------------------------------------


def test_a_key_id_derives_from_its_scope_and_key_alone() -> None:
    first = UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=uuid4())
    second = UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=uuid4())

    assert first.id == second.id == key_id(EMAIL_SCOPE, "ann@example.com")
    assert UniqueKey(scope="user-emails", key="ann@example.com", holder_id=None).id != first.id


def test_claiming_a_new_key_records_its_holder() -> None:
    holder = uuid4()

    key = UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=holder)

    claimed = only_event(key, UniqueKey.Claimed)
    assert (claimed.scope, claimed.key, claimed.holder_id) == (
        EMAIL_SCOPE,
        "ann@example.com",
        holder,
    )


def test_a_key_held_by_another_cannot_be_claimed() -> None:
    key = given(UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=uuid4()))

    with refused(KeyTakenError, key, match="^ann@example.com already belongs to another contact$"):
        key.claim(uuid4(), "ann@example.com")
    user_key = given(UniqueKey(scope="user-emails", key="ann@example.com", holder_id=uuid4()))
    with refused(KeyTakenError, user_key, match="belongs to another user$"):
        user_key.claim(uuid4(), "ann@example.com")
    assert issubclass(KeyTakenError, StateConflictError)


def test_the_holder_claiming_its_key_again_records_nothing() -> None:
    holder = uuid4()
    key = given(UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=holder))

    key.claim(holder, "ann@example.com")

    assert_no_new_events(key)


def test_a_released_key_can_be_claimed_by_another() -> None:
    first, second = uuid4(), uuid4()
    key = given(UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=first))

    key.release(first)
    key.claim(second, "ann@example.com")

    events = key.collect_events()
    assert [type(e) for e in events] == [UniqueKey.Released, UniqueKey.Reclaimed]
    released, reclaimed = events
    assert isinstance(released, UniqueKey.Released)
    assert isinstance(reclaimed, UniqueKey.Reclaimed)
    assert (released.holder_id, reclaimed.holder_id) == (first, second)
    assert key.holder_id == second


def test_a_key_cannot_be_released_by_someone_who_does_not_hold_it() -> None:
    holder = uuid4()
    key = given(UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=holder))

    key.release(uuid4())

    assert_no_new_events(key)
    assert key.holder_id == holder
    with refused(KeyTakenError, key):
        key.claim(uuid4(), "ann@example.com")


def test_a_key_created_free_can_be_claimed() -> None:
    key = given(UniqueKey(scope=EMAIL_SCOPE, key="ann@example.com", holder_id=None))
    holder = uuid4()

    key.claim(holder, "ann@example.com")

    assert event_types(key) == [UniqueKey.Reclaimed]
    assert key.holder_id == holder
