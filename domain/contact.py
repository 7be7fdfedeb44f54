"""Contacts: the people the CRM talks to. One contact per e-mail address."""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, RecordRemovedError, StateConflictError
from domain.privacy import ERASED
from domain.values import (
    Removable,
    check_name,
    check_removal_reason,
    key_id,
    keyed_key_id,
    normalize_email,
)

EMAIL_SCOPE = "contact-emails"
MAX_TAG_LENGTH = 50


def email_key_id(secret: bytes, email: str) -> UUID:
    """The id of the index key of a contact's e-mail address: keyed with the store's
    secret (``Crm.index_secret``), so that the id of a guessed address cannot be computed
    from the events, an export or the Kafka topic."""
    return keyed_key_id(secret, EMAIL_SCOPE, email)


def legacy_email_key_id(email: str) -> UUID:
    """Where stores written before keyed ids hold an address: a uuid5 of it (read only
    while a contact still holds it there; never claimed anew)."""
    return key_id(EMAIL_SCOPE, email)


class LifecycleStage(Enum):
    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    PROSPECT = "prospect"
    QUALIFIED = "qualified"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    CHURNED = "churned"
    OTHER = "other"


class ErasureBasis(Enum):
    """The ground of GDPR art. 17(1) an erasure rests on: a closed list, so that the
    record of an erasure cannot carry the person's name the way free text could."""

    NO_LONGER_NECESSARY = "no-longer-necessary"  # (a)
    CONSENT_WITHDRAWN = "consent-withdrawn"  # (b)
    OBJECTION = "objection"  # (c)
    UNLAWFUL_PROCESSING = "unlawful-processing"  # (d)
    LEGAL_OBLIGATION = "legal-obligation"  # (e)
    CHILD_SERVICES = "child-services"  # (f) data collected from a child, art. 8(1)
    #: Erasures recorded before the basis was (their free-text reason is not read back).
    UNRECORDED = "unrecorded"


#: An erasure's reference: a ticket id of the request (``GDPR-42``, ``DSR-20260115``),
#: short and shaped so that it cannot hold a sentence (a prefix can still spell a word).
ERASURE_REFERENCE = r"^[A-Z][A-Z0-9]{1,9}-[0-9]{1,12}$"
_ERASURE_REFERENCE = re.compile(ERASURE_REFERENCE)


def check_erasure(basis: ErasureBasis, reference: str | None) -> str | None:
    if basis is ErasureBasis.UNRECORDED:
        raise InvalidValueError("an erasure names the ground of art. 17(1) it rests on")
    if reference is not None and not _ERASURE_REFERENCE.match(reference):
        raise InvalidValueError(
            "an erasure's reference is a ticket id such as GDPR-42 (2 to 10 capital letters "
            "or digits, a hyphen, 1 to 12 digits), not free text"
        )
    return reference


class ContactError(StateConflictError):
    """Raised when a change conflicts with the contact's current state."""


class ContactRemovedError(ContactError, RecordRemovedError):
    """Raised when a removed contact would be changed or referred to."""


class ContactErasedError(ContactRemovedError):
    """Raised when an erased contact would be changed or erased again."""


class TagNotPresentError(ContactError):
    """Raised when a tag to remove is not on the contact."""


def normalize_emails(emails: Sequence[str]) -> list[str]:
    """Normalised, de-duplicated, in the order given (the first is the primary)."""
    normalized: list[str] = []
    for email in emails:
        address = normalize_email(email)
        if address not in normalized:
            normalized.append(address)
    return normalized


def normalize_tag(tag: str) -> str:
    normalized = tag.strip().lower()
    if not normalized or len(normalized) > MAX_TAG_LENGTH:
        raise InvalidValueError(f"a tag has 1 to {MAX_TAG_LENGTH} characters, not {tag!r}")
    return normalized


class Contact(Aggregate, Removable):
    class Created(Aggregate.Created):
        first_name: str
        last_name: str
        emails: list[str]
        phones: list[str]
        job_title: str | None
        account_id: UUID | None
        owner_id: UUID
        tags: list[str]
        lifecycle_stage: LifecycleStage

    class DetailsChanged(Aggregate.Event):
        first_name: str
        last_name: str
        phones: list[str]
        job_title: str | None

    class EmailsChanged(Aggregate.Event):
        emails: list[str]
        previous: list[str]

    class AccountChanged(Aggregate.Event):
        account_id: UUID | None
        previous: UUID | None

    class OwnerChanged(Aggregate.Event):
        owner_id: UUID
        previous: UUID

    class Tagged(Aggregate.Event):
        tag: str

    class Untagged(Aggregate.Event):
        tag: str

    class LifecycleStageChanged(Aggregate.Event):
        stage: LifecycleStage
        previous: LifecycleStage

    class Removed(Aggregate.Event):
        reason: str

    class Erased(Aggregate.Event):
        """The contact's data key was destroyed with this event (GDPR erasure): its
        personal fields read as erased in every event from then on. It says why with a
        closed ``basis`` and a ticket ``reference``, never free text: it is stored in
        plain, as the evidence of the erasure (its subject's key is gone)."""

        class_version = 2
        basis: ErasureBasis
        reference: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 had a free-text reason, which may name the person: it is not
            # read back (the stored bytes keep it: events are never rewritten).
            del state["reason"]
            state["basis"] = ErasureBasis.UNRECORDED
            state["reference"] = None

    @event(Created)
    def __init__(
        self,
        first_name: str,
        last_name: str,
        emails: list[str],
        phones: list[str],
        job_title: str | None,
        account_id: UUID | None,
        owner_id: UUID,
        tags: list[str],
        lifecycle_stage: LifecycleStage,
    ) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.emails = list(emails)
        self.phones = list(phones)
        self.job_title = job_title
        self.account_id = account_id
        self.owner_id = owner_id
        self.tags = list(tags)
        self.lifecycle_stage = lifecycle_stage
        self.removed = False
        self.erased = False

    @classmethod
    def create(
        cls,
        first_name: str,
        last_name: str,
        owner_id: UUID,
        emails: Sequence[str] = (),
        phones: Sequence[str] = (),
        job_title: str | None = None,
        account_id: UUID | None = None,
        tags: Sequence[str] = (),
        lifecycle_stage: LifecycleStage = LifecycleStage.LEAD,
        id: UUID | None = None,
    ) -> Contact:
        """A new contact; ``id`` is given where it must be derived (an import), else new."""
        tag_list: list[str] = []
        for tag in map(normalize_tag, tags):
            if tag not in tag_list:
                tag_list.append(tag)
        return cls._create(
            cls.Created,
            id=id,
            first_name=check_name(first_name, "first name"),
            last_name=last_name.strip(),
            emails=normalize_emails(emails),
            phones=[phone.strip() for phone in phones if phone.strip()],
            job_title=job_title,
            account_id=account_id,
            owner_id=owner_id,
            tags=tag_list,
            lifecycle_stage=lifecycle_stage,
        )

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def change_details(
        self, first_name: str, last_name: str, phones: Sequence[str], job_title: str | None
    ) -> None:
        self.check_not_removed()
        first_name = check_name(first_name, "first name")
        last_name = last_name.strip()
        phone_list = [phone.strip() for phone in phones if phone.strip()]
        if (first_name, last_name, phone_list, job_title) != (
            self.first_name,
            self.last_name,
            self.phones,
            self.job_title,
        ):
            self._change_details(
                first_name=first_name, last_name=last_name, phones=phone_list, job_title=job_title
            )

    @event(DetailsChanged)
    def _change_details(
        self, first_name: str, last_name: str, phones: list[str], job_title: str | None
    ) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.phones = list(phones)
        self.job_title = job_title

    def change_emails(self, emails: Sequence[str]) -> tuple[list[str], list[str]]:
        """Set the addresses; returns (added, removed) so that the caller can
        claim and release their index keys in the same save."""
        self.check_not_removed()
        new = normalize_emails(emails)
        added = [e for e in new if e not in self.emails]
        removed = [e for e in self.emails if e not in new]
        if new != self.emails:
            self._change_emails(emails=new, previous=list(self.emails))
        return added, removed

    @event(EmailsChanged)
    def _change_emails(self, emails: list[str], previous: list[str]) -> None:
        self.emails = list(emails)

    def link_account(self, account_id: UUID | None) -> None:
        self.check_not_removed()
        if account_id != self.account_id:
            self._change_account(account_id=account_id, previous=self.account_id)

    @event(AccountChanged)
    def _change_account(self, account_id: UUID | None, previous: UUID | None) -> None:
        self.account_id = account_id

    def reassign(self, owner_id: UUID) -> None:
        self.check_not_removed()
        if owner_id != self.owner_id:
            self._change_owner(owner_id=owner_id, previous=self.owner_id)

    @event(OwnerChanged)
    def _change_owner(self, owner_id: UUID, previous: UUID) -> None:
        self.owner_id = owner_id

    def tag(self, tag: str) -> None:
        self.check_not_removed()
        tag = normalize_tag(tag)
        if tag not in self.tags:
            self._tag(tag=tag)

    @event(Tagged)
    def _tag(self, tag: str) -> None:
        self.tags.append(tag)

    def untag(self, tag: str) -> None:
        self.check_not_removed()
        tag = normalize_tag(tag)
        if tag not in self.tags:
            raise TagNotPresentError(f"contact is not tagged {tag!r}")
        self._untag(tag=tag)

    @event(Untagged)
    def _untag(self, tag: str) -> None:
        self.tags.remove(tag)

    def change_lifecycle_stage(self, stage: LifecycleStage) -> None:
        self.check_not_removed()
        if stage != self.lifecycle_stage:
            self._change_stage(stage=stage, previous=self.lifecycle_stage)

    @event(LifecycleStageChanged)
    def _change_stage(self, stage: LifecycleStage, previous: LifecycleStage) -> None:
        self.lifecycle_stage = stage

    #: Set by ``Erased``; the default serves contacts loaded from before erasure existed.
    erased = False

    def check_not_removed(self) -> None:
        if self.erased:
            raise ContactErasedError(f"contact {self.id} was erased")
        if self.removed:
            raise ContactRemovedError(f"contact {self.id} was removed")

    def remove(self, reason: str = "") -> list[str]:
        """Remove the contact for good; returns its e-mail addresses, whose index keys
        the caller releases in the same save. History keeps the contact."""
        self.check_not_removed()
        self._remove(reason=check_removal_reason(reason))
        return list(self.emails)

    @event(Removed)
    def _remove(self, reason: str) -> None:
        self.removed = True

    def erase(self, basis: ErasureBasis, reference: str | None = None) -> list[str]:
        """Erase the contact's personal data (its key goes with this event); returns its
        e-mail addresses, whose index keys the caller releases in the same save. Also a
        removed contact can be erased; an erased one cannot be changed any more, and
        erasing it again records nothing (the erasure is done: a retry succeeds)."""
        reference = check_erasure(basis, reference)
        if self.erased:
            return []
        emails = [] if self.removed else list(self.emails)
        self._erase(basis=basis, reference=reference)
        return emails

    @event(Erased)
    def _erase(self, basis: ErasureBasis, reference: str | None) -> None:
        self.erased = True
        self.removed = True
        # As the contact reloads once its key is gone (see domain/privacy.PERSONAL).
        self.first_name = self.last_name = ERASED
        self.emails, self.phones, self.job_title = [], [], None
