from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep
from api.reading import AuditReader
from api.routes.common import (
    NO_FIELDS,
    HistoryQueryDep,
    PointInTimeDep,
    RemovalReasonDep,
    read,
    read_history,
    run,
)
from api.schemas import ContactPublic, HistoryPagePublic
from api.subject_access import subject_access
from commands.contacts import (
    AccountLink,
    ChangeLifecycleStage,
    ContactChanges,
    ContactOwnerChange,
    CreateContact,
    EraseContact,
    Erasure,
    LifecycleChange,
    LinkContactToAccount,
    ReassignContact,
    RemoveContact,
    TagBody,
    TagContact,
    UntagContact,
    UpdateContact,
)
from commands.context import Receipt
from domain.contact import Contact
from domain.permissions import Action, Resource, check

router = APIRouter()


@router.post("", status_code=201)
def create_contact(
    body: CreateContact, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, body, ctx, response, created="/contacts")


@router.get("/{contact_id}")
def get_contact(
    contact_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> ContactPublic:
    """The contact now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return ContactPublic.of(read(crm, Contact, contact_id, response, actor, at))


@router.get("/{contact_id}/history")
def contact_history(
    contact_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the contact, oldest first: who, when, and each field before/after."""
    return read_history(crm, Contact, contact_id, query, actor)


@router.patch("/{contact_id}")
def update_contact(
    contact_id: UUID, body: ContactChanges, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    fields = body.model_dump(exclude_unset=True)
    return run(crm, UpdateContact(contact_id=contact_id, **fields), ctx, response)


@router.post("/{contact_id}/account")
def link_to_account(
    contact_id: UUID, body: AccountLink, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    command = LinkContactToAccount(contact_id=contact_id, **body.model_dump())
    return run(crm, command, ctx, response)


@router.post("/{contact_id}/owner")
def reassign_contact(
    contact_id: UUID, body: ContactOwnerChange, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, ReassignContact(contact_id=contact_id, **body.model_dump()), ctx, response)


@router.post("/{contact_id}/tags")
def tag_contact(
    contact_id: UUID, body: TagBody, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, TagContact(contact_id=contact_id, **body.model_dump()), ctx, response)


@router.delete("/{contact_id}/tags/{tag}", dependencies=NO_FIELDS)
def untag_contact(
    contact_id: UUID, tag: str, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, UntagContact(contact_id=contact_id, tag=tag), ctx, response)


@router.post("/{contact_id}/lifecycle-stage")
def change_lifecycle_stage(
    contact_id: UUID, body: LifecycleChange, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    command = ChangeLifecycleStage(contact_id=contact_id, **body.model_dump())
    return run(crm, command, ctx, response)


@router.delete("/{contact_id}")
def remove_contact(
    contact_id: UUID, reason: RemovalReasonDep, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Remove the contact for good (Managers and above): it leaves every current view and
    later commands on it are refused; its history and as-of reads still show it."""
    return run(crm, RemoveContact(contact_id=contact_id, reason=reason), ctx, response)


@router.post("/{contact_id}/erasure")
def erase_contact(
    contact_id: UUID, body: Erasure, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """GDPR erasure (the table's ``erase`` on contacts: Owners and Admins): the contact's
    data key is destroyed with a ``Contact.Erased`` event, so its personal fields read as
    ``[erased]`` everywhere from then on (history, as-of reads, exports, rebuilds); later
    commands on it get 409. The body says why: ``basis`` (the ground of art. 17(1)) and
    an optional ticket ``reference``, never free text. Erasing it again succeeds and
    appends nothing; a contact stored before sealing existed is refused (409)."""
    command = EraseContact(contact_id=contact_id, **body.model_dump())
    return run(crm, command, ctx, response)


@router.get("/{contact_id}/subject-access")
def contact_subject_access(
    contact_id: UUID, crm: CrmDep, actor: AuthorityDep, audit_log: AuditReader
) -> dict[str, Any]:
    """GDPR subject access (the table's ``erase`` on contacts: Owners and Admins):
    everything held about the contact as JSON — its state, full history, interactions,
    tasks, deals, account, audit rows."""
    contact = crm.load(Contact, contact_id)
    check(actor, Resource.CONTACT, Action.ERASE, contact.owner_id, contact.id)
    return subject_access(crm, contact_id, audit_log)
