"""Commands on accounts."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from commands.app import Crm
from commands.context import Context, Decision, Payload, Removal, authorize
from commands.loading import check_user, load_permitted, load_ref
from domain.account import Account, Hierarchy, hierarchy_id
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource

Name = Field(min_length=1, max_length=200)
Text = Field(default=None, max_length=500)


class RegisterAccount(Payload):
    PERMIT = (Resource.ACCOUNT, Action.CREATE)
    name: str = Name
    website: str | None = Text
    industry: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, description="ISO 3166 alpha-2, e.g. DE")
    address: str | None = Text
    owner_id: UUID | None = Field(default=None, description="defaults to the acting user")
    parent_id: UUID | None = None


class AccountChanges(Payload):
    """Only the fields present change; null clears an optional field."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    website: str | None = Text
    industry: str | None = Field(default=None, max_length=100)
    country: str | None = None
    address: str | None = Text


class UpdateAccount(AccountChanges):
    PERMIT = (Resource.ACCOUNT, Action.EDIT)
    account_id: UUID


class OwnerChange(Payload):
    owner_id: UUID


class ReassignAccount(OwnerChange):
    PERMIT = (Resource.ACCOUNT, Action.EDIT)
    account_id: UUID


class ParentChange(Payload):
    parent_id: UUID | None


class MoveAccount(ParentChange):
    PERMIT = (Resource.ACCOUNT, Action.EDIT)
    account_id: UUID


class ArchiveAccount(Payload):
    PERMIT = (Resource.ACCOUNT, Action.EDIT)
    account_id: UUID


class RestoreAccount(Payload):
    PERMIT = (Resource.ACCOUNT, Action.EDIT)
    account_id: UUID


def owner_or_actor(owner_id: UUID | None, ctx: Context) -> UUID:
    owner = owner_id or ctx.actor.user_id
    if owner is None:
        raise InvalidValueError("owner_id is required when no user is acting")
    return owner


def ancestry(crm: Crm, account: Account) -> list[UUID]:
    """Ids from the account's parent up to the root, as stored."""
    ids: list[UUID] = []
    parent_id = account.parent_id
    while parent_id is not None and parent_id not in ids:
        ids.append(parent_id)
        parent_id = crm.load(Account, parent_id).parent_id
    return ids


def new_account(
    cmd: RegisterAccount, owner_id: UUID, parent: Account | None, id: UUID | None = None
) -> Account:
    """The account ``cmd`` registers (the handler's and the importer's one way)."""
    return Account.register(
        name=cmd.name,
        owner_id=owner_id,
        website=cmd.website,
        industry=cmd.industry,
        country=cmd.country,
        address=cmd.address,
        parent=parent,
        id=id,
    )


def register_account(cmd: RegisterAccount, crm: Crm, ctx: Context) -> Decision:
    owner_id = owner_or_actor(cmd.owner_id, ctx)
    authorize(cmd, ctx, owner_id, None)
    check_user(crm, owner_id)
    parent = load_ref(crm, Account, cmd.parent_id, ctx.actor) if cmd.parent_id else None
    account = new_account(cmd, owner_id, parent)
    return Decision(account, created={"account_id": account.id})


def update_account(cmd: UpdateAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    given = cmd.model_fields_set
    if "name" in given and cmd.name is None:
        raise InvalidValueError("an account's name cannot be cleared")
    account.change_details(
        name=cmd.name if cmd.name is not None else account.name,
        website=cmd.website if "website" in given else account.website,
        industry=cmd.industry if "industry" in given else account.industry,
        country=cmd.country if "country" in given else account.country,
        address=cmd.address if "address" in given else account.address,
    )
    return Decision(account)


def reassign_account(cmd: ReassignAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    authorize(cmd, ctx, cmd.owner_id, account.id)  # the new owner too
    check_user(crm, cmd.owner_id)
    account.reassign(cmd.owner_id)
    return Decision(account)


def move_account(cmd: MoveAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    parent = load_ref(crm, Account, cmd.parent_id, ctx.actor) if cmd.parent_id else None
    # Read the hierarchy's version before the ancestry: a move committed in between
    # then makes our save conflict instead of deciding on a stale tree.
    hierarchy = crm.find(Hierarchy, hierarchy_id()) or Hierarchy()
    before = account.version
    account.move_under(parent, ancestry(crm, parent) if parent else [])
    if account.version == before:
        return Decision(account)
    hierarchy.record(account)
    return Decision(account, others=[hierarchy])


def archive_account(cmd: ArchiveAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    account.archive()
    return Decision(account)


def restore_account(cmd: RestoreAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    account.restore()
    return Decision(account)


class RemoveAccount(Removal):
    PERMIT = (Resource.ACCOUNT, Action.REMOVE)
    account_id: UUID


def remove_account(cmd: RemoveAccount, crm: Crm, ctx: Context) -> Decision:
    account = load_permitted(crm, Account, cmd.account_id, cmd, ctx)
    account.remove(cmd.reason)
    return Decision(account)
