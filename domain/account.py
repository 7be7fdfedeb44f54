"""Accounts: the B2B companies the CRM sells to, in a hierarchy (parent accounts)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValueError, RecordRemovedError, StateConflictError
from domain.values import Removable, check_country, check_name, check_removal_reason, key_id


class AccountError(StateConflictError):
    """Raised when a change conflicts with the account's current state."""


class AccountArchivedError(AccountError):
    """Raised when an archived account would be changed (other than restored)."""


class AccountRemovedError(AccountError, RecordRemovedError):
    """Raised when a removed account would be changed or referred to."""


class AccountHierarchyCycleError(AccountError):
    """Raised when a parent change would make an account its own ancestor."""


class Account(Aggregate, Removable):
    class Registered(Aggregate.Created):
        name: str
        website: str | None
        industry: str | None
        country: str | None
        address: str | None
        owner_id: UUID
        parent_id: UUID | None

    class DetailsChanged(Aggregate.Event):
        name: str
        website: str | None
        industry: str | None
        country: str | None
        address: str | None

    class OwnerChanged(Aggregate.Event):
        owner_id: UUID
        previous: UUID

    class ParentChanged(Aggregate.Event):
        parent_id: UUID | None
        previous: UUID | None

    class Archived(Aggregate.Event):
        pass

    class Restored(Aggregate.Event):
        pass

    class Removed(Aggregate.Event):
        reason: str

    @event(Registered)
    def __init__(
        self,
        name: str,
        website: str | None,
        industry: str | None,
        country: str | None,
        address: str | None,
        owner_id: UUID,
        parent_id: UUID | None,
    ) -> None:
        self.name = name
        self.website = website
        self.industry = industry
        self.country = country
        self.address = address
        self.owner_id = owner_id
        self.parent_id = parent_id
        self.archived = False
        self.removed = False

    @classmethod
    def register(
        cls,
        name: str,
        owner_id: UUID,
        website: str | None = None,
        industry: str | None = None,
        country: str | None = None,
        address: str | None = None,
        parent: Account | None = None,
        id: UUID | None = None,
    ) -> Account:
        """A new account; ``id`` is given where it must be derived (an import), else new."""
        check_country(country)
        check_website(website)
        if parent is not None:
            parent.check_not_archived()
        return cls._create(
            cls.Registered,
            id=id,
            name=check_name(name),
            website=website,
            industry=industry,
            country=country,
            address=address,
            owner_id=owner_id,
            parent_id=parent.id if parent else None,
        )

    def check_not_removed(self) -> None:
        if self.removed:
            raise AccountRemovedError(f"account {self.id} was removed")

    def check_not_archived(self) -> None:
        self.check_not_removed()
        if self.archived:
            raise AccountArchivedError(f"account {self.id} is archived")

    def change_details(
        self,
        name: str,
        website: str | None,
        industry: str | None,
        country: str | None,
        address: str | None,
    ) -> None:
        self.check_not_archived()
        check_country(country)
        check_website(website)
        name = check_name(name)
        if (name, website, industry, country, address) == (
            self.name,
            self.website,
            self.industry,
            self.country,
            self.address,
        ):
            return
        self._change_details(
            name=name, website=website, industry=industry, country=country, address=address
        )

    @event(DetailsChanged)
    def _change_details(
        self,
        name: str,
        website: str | None,
        industry: str | None,
        country: str | None,
        address: str | None,
    ) -> None:
        self.name = name
        self.website = website
        self.industry = industry
        self.country = country
        self.address = address

    def reassign(self, owner_id: UUID) -> None:
        self.check_not_archived()
        if owner_id != self.owner_id:
            self._change_owner(owner_id=owner_id, previous=self.owner_id)

    @event(OwnerChanged)
    def _change_owner(self, owner_id: UUID, previous: UUID) -> None:
        self.owner_id = owner_id

    def move_under(self, parent: Account | None, parent_ancestry: Sequence[UUID]) -> None:
        """Place this account under ``parent``; ``parent_ancestry`` lists the ids from
        the parent's own parent up to the root, as currently stored."""
        self.check_not_archived()
        if parent is not None:
            parent.check_not_archived()
            if parent.id == self.id or self.id in parent_ancestry:
                raise AccountHierarchyCycleError(
                    "an account cannot sit under itself or under one of its descendants"
                )
        parent_id = parent.id if parent else None
        if parent_id != self.parent_id:
            self._change_parent(parent_id=parent_id, previous=self.parent_id)

    @event(ParentChanged)
    def _change_parent(self, parent_id: UUID | None, previous: UUID | None) -> None:
        self.parent_id = parent_id

    def archive(self) -> None:
        self.check_not_archived()
        self._archive()

    @event(Archived)
    def _archive(self) -> None:
        self.archived = True

    def restore(self) -> None:
        self.check_not_removed()
        if not self.archived:
            raise AccountError(f"account {self.id} is not archived")
        self._restore()

    @event(Restored)
    def _restore(self) -> None:
        self.archived = False

    def remove(self, reason: str = "") -> None:
        """Remove the account for good: it leaves every current view; history keeps it."""
        self.check_not_removed()
        self._remove(reason=check_removal_reason(reason))

    @event(Removed)
    def _remove(self, reason: str) -> None:
        self.removed = True


def check_website(website: str | None) -> None:
    if website is not None and (" " in website or len(website) > 255):
        raise InvalidValueError(f"{website!r} is not a website address")


class Hierarchy(Aggregate):
    """One per CRM. Every parent change is also recorded here, so that concurrent
    moves are serialised by the store and two of them can never close a cycle
    (A under B while B goes under A)."""

    class Started(Aggregate.Created):
        pass

    class ParentSet(Aggregate.Event):
        account_id: UUID
        parent_id: UUID | None

    @event(Started)
    def __init__(self) -> None:
        pass

    @staticmethod
    def create_id() -> UUID:
        return hierarchy_id()

    def record(self, account: Account) -> None:
        self._set(account_id=account.id, parent_id=account.parent_id)

    @event(ParentSet)
    def _set(self, account_id: UUID, parent_id: UUID | None) -> None:
        pass


def hierarchy_id() -> UUID:
    return key_id("hierarchy", "accounts")
