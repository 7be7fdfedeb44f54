"""Commands on contacts. E-mail addresses are unique across contacts."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from pydantic import EmailStr, Field

from commands.accounts import owner_or_actor
from commands.app import Crm
from commands.context import Context, Decision, Payload, Removal, authorize
from commands.errors import UnsealedHistoryError
from commands.loading import check_account, check_expected_version, check_user, load_permitted
from domain.contact import (
    EMAIL_SCOPE,
    ERASURE_REFERENCE,
    Contact,
    ErasureBasis,
    LifecycleStage,
    email_key_id,
    legacy_email_key_id,
)
from domain.errors import InvalidValueError
from domain.index import UniqueKey
from domain.permissions import Action, Resource

MAX_LIST = 20


class CreateContact(Payload):
    PERMIT = (Resource.CONTACT, Action.CREATE)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(default="", max_length=100)
    emails: list[EmailStr] = Field(default=[], max_length=MAX_LIST)
    phones: list[str] = Field(default=[], max_length=MAX_LIST)
    job_title: str | None = Field(default=None, max_length=200)
    account_id: UUID | None = None
    owner_id: UUID | None = Field(default=None, description="defaults to the acting user")
    tags: list[str] = Field(default=[], max_length=MAX_LIST)
    lifecycle_stage: LifecycleStage = LifecycleStage.LEAD


class ContactChanges(Payload):
    """Only the fields present change; null clears an optional field."""

    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    emails: list[EmailStr] | None = Field(default=None, max_length=MAX_LIST)
    phones: list[str] | None = Field(default=None, max_length=MAX_LIST)
    job_title: str | None = Field(default=None, max_length=200)


class UpdateContact(ContactChanges):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


class AccountLink(Payload):
    account_id: UUID | None


class LinkContactToAccount(AccountLink):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


class ContactOwnerChange(Payload):
    owner_id: UUID


class ReassignContact(ContactOwnerChange):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


class TagBody(Payload):
    tag: str = Field(min_length=1, max_length=50)


class TagContact(TagBody):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


class UntagContact(TagBody):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


class LifecycleChange(Payload):
    stage: LifecycleStage


class ChangeLifecycleStage(LifecycleChange):
    PERMIT = (Resource.CONTACT, Action.EDIT)
    contact_id: UUID


def claim_emails(crm: Crm, contact_id: UUID, emails: list[str]) -> list[UniqueKey]:
    find = _finder(crm)
    return claim_email_keys(find, crm.index_secret, contact_id, emails)


def _finder(crm: Crm) -> Callable[[UUID], UniqueKey | None]:
    return lambda key: crm.find(UniqueKey, key)


def email_key_ids(secret: bytes, email: str) -> tuple[UUID, UUID]:
    """Where the index key of ``email`` may be: its keyed id (``secret``: the store's
    ``Crm.index_secret``), then its uuid5 id of a store written before keyed ids."""
    return email_key_id(secret, email), legacy_email_key_id(email)


def find_email_key(
    find: Callable[[UUID], UniqueKey | None], secret: bytes, email: str
) -> tuple[UUID, UniqueKey | None]:
    """The keyed id of ``email`` and its index key, if any (``find`` gives the key stored
    at an id, or None).

    The key at the keyed id when there is one; else a key of a store written before keyed
    ids, at the address's uuid5 id, while a contact holds it there. Once that one is
    released the address is claimed at its keyed id only, and the legacy key is never
    claimed again: an address never has a holder at both ids (a key is made at the keyed
    id only once the legacy one was seen free, and two such claims collide there)."""
    keyed, legacy = email_key_ids(secret, email)
    found = find(keyed)
    if found is None:
        held_before = find(legacy)
        if held_before is not None and held_before.holder_id is not None:
            return keyed, held_before
    return keyed, found


def claim_email_keys(
    find: Callable[[UUID], UniqueKey | None], secret: bytes, contact_id: UUID, emails: list[str]
) -> list[UniqueKey]:
    """The index keys of ``emails``, claimed for the contact (``find`` gives the existing
    key of an id, or None; ``secret`` keys the ids, :func:`find_email_key`). Every key is
    checked before any is claimed: a refusal leaves the keys found unchanged."""
    found = [(email, *find_email_key(find, secret, email)) for email in emails]
    for email, _, existing in found:
        if existing is not None:
            existing.check_free_for(contact_id, email)
    keys = []
    for email, keyed, key in found:
        if key is None:
            key = UniqueKey.create(scope=EMAIL_SCOPE, holder_id=contact_id, id=keyed)
        else:
            key.claim(contact_id, email)
        keys.append(key)
    return keys


def release_emails(crm: Crm, contact_id: UUID, emails: list[str]) -> list[UniqueKey]:
    find, keys = _finder(crm), []
    for email in emails:
        _, key = find_email_key(find, crm.index_secret, email)
        if key is not None:
            key.release(contact_id)
            keys.append(key)
    return keys


def new_contact(cmd: CreateContact, owner_id: UUID, id: UUID | None = None) -> Contact:
    """The contact ``cmd`` creates (the handler's and the importer's one way); its
    e-mail keys are claimed apart."""
    return Contact.create(
        first_name=cmd.first_name,
        last_name=cmd.last_name,
        owner_id=owner_id,
        emails=cmd.emails,
        phones=cmd.phones,
        job_title=cmd.job_title,
        account_id=cmd.account_id,
        tags=cmd.tags,
        lifecycle_stage=cmd.lifecycle_stage,
        id=id,
    )


def create_contact(cmd: CreateContact, crm: Crm, ctx: Context) -> Decision:
    owner_id = owner_or_actor(cmd.owner_id, ctx)
    authorize(cmd, ctx, owner_id, None)
    check_user(crm, owner_id)
    check_account(crm, cmd.account_id, ctx.actor)
    contact = new_contact(cmd, owner_id)
    keys = claim_emails(crm, contact.id, contact.emails)
    return Decision(contact, others=keys, created={"contact_id": contact.id})


def update_contact(cmd: UpdateContact, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    given = cmd.model_fields_set
    if "first_name" in given and cmd.first_name is None:
        raise InvalidValueError("a contact's first name cannot be cleared")
    contact.change_details(
        first_name=cmd.first_name if cmd.first_name is not None else contact.first_name,
        last_name=cmd.last_name if cmd.last_name is not None else contact.last_name,
        phones=cmd.phones if cmd.phones is not None else contact.phones,
        job_title=cmd.job_title if "job_title" in given else contact.job_title,
    )
    keys: list[UniqueKey] = []
    if cmd.emails is not None:
        added, removed = contact.change_emails(cmd.emails)
        keys = claim_emails(crm, contact.id, added) + release_emails(crm, contact.id, removed)
    return Decision(contact, others=keys)


def link_contact_to_account(cmd: LinkContactToAccount, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    check_account(crm, cmd.account_id, ctx.actor)
    contact.link_account(cmd.account_id)
    return Decision(contact)


def reassign_contact(cmd: ReassignContact, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    authorize(cmd, ctx, cmd.owner_id, contact.id)  # the new owner too
    check_user(crm, cmd.owner_id)
    contact.reassign(cmd.owner_id)
    return Decision(contact)


def tag_contact(cmd: TagContact, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    contact.tag(cmd.tag)
    return Decision(contact)


def untag_contact(cmd: UntagContact, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    contact.untag(cmd.tag)
    return Decision(contact)


def change_lifecycle_stage(cmd: ChangeLifecycleStage, crm: Crm, ctx: Context) -> Decision:
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    contact.change_lifecycle_stage(cmd.stage)
    return Decision(contact)


class RemoveContact(Removal):
    PERMIT = (Resource.CONTACT, Action.REMOVE)
    contact_id: UUID


def remove_contact(cmd: RemoveContact, crm: Crm, ctx: Context) -> Decision:
    """Remove the contact and free its e-mail addresses for other contacts, in one save."""
    contact = load_permitted(crm, Contact, cmd.contact_id, cmd, ctx)
    emails = contact.remove(cmd.reason)
    return Decision(contact, others=release_emails(crm, contact.id, emails))


class Erasure(Payload):
    """Why a contact is erased: the ground of GDPR art. 17(1) and the ticket of the
    request, never free text (the erasure's event is stored in plain, as its evidence)."""

    basis: ErasureBasis = Field(description="the ground of art. 17(1) the erasure rests on")
    reference: str | None = Field(
        default=None,
        pattern=ERASURE_REFERENCE,
        description="the ticket of the request, e.g. GDPR-42",
    )


class EraseContact(Erasure):
    PERMIT = (Resource.CONTACT, Action.ERASE)

    contact_id: UUID


def erase_contact(cmd: EraseContact, crm: Crm, ctx: Context) -> Decision:
    """GDPR erasure (the table's ``erase``: Owners and Admins): ``Contact.Erased`` is stored
    in the same transaction that destroys the contact's data key (``commands/sealing.py``),
    with its e-mail addresses freed; its snapshots go just before (``Crm.save_with``). A
    removed contact can be erased. Erasing an erased contact appends nothing and succeeds
    (with any snapshot left over shredded): a retry finishes the job, whatever version it
    expected. A contact with personal fields stored in plain (from before sealing) is
    refused: destroying its key could not erase them."""
    contact = crm.load(Contact, cmd.contact_id)
    authorize(cmd, ctx, contact.owner_id, contact.id)
    if not contact.erased:
        check_expected_version(contact, ctx)
        check_all_sealed(crm, contact.id)
    emails = contact.erase(cmd.basis, cmd.reference)
    return Decision(contact, others=release_emails(crm, contact.id, emails))


def check_all_sealed(crm: Crm, contact_id: UUID) -> None:
    unsealed = crm.unsealed_versions(contact_id)
    if unsealed:
        versions = ("version " if len(unsealed) == 1 else "versions ") + ", ".join(
            map(str, unsealed)
        )
        raise UnsealedHistoryError(
            f"contact {contact_id} cannot be erased: its events at {versions} hold personal "
            "fields in plain (stored before sealing existed), which destroying its key "
            "cannot erase; nothing was done"
        )
