"""The directory read model over HTTP: accounts and contacts with filters, text
search and cursor pagination; an account with its children and subtree roll-up."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import duckdb
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.cursors import decode_cursor, encode_cursor
from api.deps import AccountScope, AuthorityDep, ContactScope
from api.reading import reader_for
from commands.errors import NotFoundError
from domain.contact import LifecycleStage, normalize_tag
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource, check, visible_owners
from projections import directory

router = APIRouter()

DirectoryReader = Annotated[duckdb.DuckDBPyConnection, Depends(reader_for("directory"))]

After = Annotated[str | None, Query(description="cursor: `next` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Search = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="words that must each occur (ignoring case) in one of the searched fields",
    ),
]
Country = Annotated[
    str | None, Query(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2, e.g. DE")
]


class AccountItem(BaseModel):
    id: UUID
    name: str
    website: str | None
    domain: str | None
    industry: str | None
    country: str | None
    address: str | None
    owner_id: UUID
    parent_id: UUID | None
    archived: bool
    child_count: int
    created_position: int
    updated_position: int
    created_at: datetime
    updated_at: datetime


class AccountsPage(BaseModel):
    items: list[AccountItem]
    next: str | None


class Descendant(BaseModel):
    id: UUID
    name: str
    parent_id: UUID | None
    depth: int
    archived: bool


class CurrencyTotal(BaseModel):
    currency: str
    deals: int
    amount: Decimal


class OpenPipeline(BaseModel):
    """Open deals, counted and summed per currency: amounts in different
    currencies are never added together."""

    deals: int
    by_currency: list[CurrencyTotal]


class AccountDetail(AccountItem):
    children: list[AccountItem]
    descendant_count: int
    descendants: list[Descendant]
    open_pipeline: OpenPipeline | None
    subtree_open_pipeline: OpenPipeline | None


class ContactItem(BaseModel):
    id: UUID
    name: str
    first_name: str
    last_name: str
    emails: list[str]
    phones: list[str]
    job_title: str | None
    account_id: UUID | None
    company: str | None
    account_country: str | None
    owner_id: UUID
    tags: list[str]
    lifecycle_stage: LifecycleStage
    created_position: int
    updated_position: int
    created_at: datetime
    updated_at: datetime


class ContactsPage(BaseModel):
    items: list[ContactItem]
    next: str | None


def page_key(after: str | None) -> tuple[str, str] | None:
    if after is None:
        return None
    sort_name, record_id = decode_cursor(after, str, str)
    try:
        UUID(record_id)
    except (TypeError, ValueError):
        raise InvalidValueError("after: not a cursor this endpoint returned") from None
    if sort_name is None:
        raise InvalidValueError("after: not a cursor this endpoint returned")
    return sort_name, record_id


def next_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    """A cursor after the last row shown, if the query found one row more."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last["sort_name"], last["id"])


def _str(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


@router.get("/accounts")
def list_accounts(
    con: DirectoryReader,
    owner: UUID | None = None,
    country: Country = None,
    industry: Annotated[str | None, Query(max_length=100, description="ignoring case")] = None,
    archived: Annotated[
        bool | None, Query(description="true: only archived; false: only active; default both")
    ] = None,
    parent: Annotated[UUID | None, Query(description="only the children of this account")] = None,
    q: Search = None,
    after: After = None,
    limit: Limit = 100,
    *,
    scope: AccountScope,
) -> AccountsPage:
    """Accounts by name, then id. `q` searches name, domain and website. Only the
    accounts the caller may read are listed."""
    rows = directory.accounts(
        con,
        owner=_str(owner),
        owners=scope,
        country=country.upper() if country else None,
        industry=industry,
        archived=archived,
        parent=_str(parent),
        q=q,
        after=page_key(after),
        limit=limit + 1,
    )
    return AccountsPage(
        items=[AccountItem(**row) for row in rows[:limit]], next=next_cursor(rows, limit)
    )


@router.get("/accounts/{account_id}")
def get_account(
    account_id: UUID, con: DirectoryReader, actor: AuthorityDep, scope: AccountScope
) -> AccountDetail:
    """An account with its children, its subtree and the open pipeline over it.

    Children and descendants are those the caller may read. The open pipeline roll-ups
    sum every deal of the account (and subtree), whoever owns it: they are `null` for a
    caller who may not read every deal (the sums would disclose deals outside their
    scope)."""
    detail = directory.account_detail(
        con,
        str(account_id),
        owners=scope,
        with_pipeline=visible_owners(actor, Resource.DEAL, Action.READ) is None,
    )
    if detail is None:
        raise NotFoundError("account", account_id)
    check(actor, Resource.ACCOUNT, Action.READ, UUID(detail["owner_id"]), target=account_id)
    return AccountDetail(**detail)


@router.get("/contacts")
def list_contacts(
    con: DirectoryReader,
    owner: UUID | None = None,
    lifecycle_stage: LifecycleStage | None = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    account: UUID | None = None,
    country: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z]{2}$", description="the country of the contact's account"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="words that must each occur (ignoring case) in the name, "
            "an e-mail address or the company",
        ),
    ] = None,
    after: After = None,
    limit: Limit = 100,
    *,
    scope: ContactScope,
) -> ContactsPage:
    """Contacts by name, then id: those the caller may read."""
    rows = directory.contacts(
        con,
        owner=_str(owner),
        owners=scope,
        lifecycle_stage=lifecycle_stage.value if lifecycle_stage else None,
        tag=normalize_tag(tag) if tag is not None else None,
        account=_str(account),
        country=country.upper() if country else None,
        q=q,
        after=page_key(after),
        limit=limit + 1,
    )
    return ContactsPage(
        items=[ContactItem(**row) for row in rows[:limit]], next=next_cursor(rows, limit)
    )
