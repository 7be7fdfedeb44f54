from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from api.deps import AuthorityDep, ContextDep, CrmDep, UserDep
from api.routes.common import NO_FIELDS, HistoryQueryDep, PointInTimeDep, read, read_history, run
from api.schemas import HistoryPagePublic, UserPublic
from commands.context import Receipt
from commands.roles import CustomRoleBody, GrantCustomRole, RevokeCustomRole
from commands.users import (
    AssignManager,
    DeactivateUser,
    GrantRole,
    InviteUser,
    IssueToken,
    ManagerBody,
    RevokeRole,
    RevokeToken,
    RoleBody,
    RotateToken,
    RotationRequest,
    TokenRequest,
)
from domain.roles import Role
from domain.user import User

router = APIRouter()


@router.post("", status_code=201)
def invite_user(body: InviteUser, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    """Invite a user with a first role. The reply's ``shown_once.token`` is their API
    token: it is never shown again, and only its hash is stored."""
    return run(crm, body, ctx, response, created="/users")


@router.get("/me")
def who_am_i(user: UserDep, response: Response) -> UserPublic:
    response.headers["ETag"] = f'"{user.version}"'
    return UserPublic.of(user)


@router.get("/{user_id}")
def get_user(
    user_id: UUID, crm: CrmDep, actor: AuthorityDep, response: Response, at: PointInTimeDep
) -> UserPublic:
    """The user now, as recorded by ``as_of``, or at ``version``; ETag is its version."""
    return UserPublic.of(read(crm, User, user_id, response, actor, at))


@router.get("/{user_id}/history")
def user_history(
    user_id: UUID, crm: CrmDep, actor: AuthorityDep, query: HistoryQueryDep
) -> HistoryPagePublic:
    """Every event of the user, oldest first: who, when, and each field before/after."""
    return read_history(crm, User, user_id, query, actor)


@router.post("/{user_id}/roles")
def grant_role(
    user_id: UUID, body: RoleBody, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, GrantRole(user_id=user_id, **body.model_dump()), ctx, response)


@router.delete("/{user_id}/roles/{role}", dependencies=NO_FIELDS)
def revoke_role(
    user_id: UUID, role: Role, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, RevokeRole(user_id=user_id, role=role), ctx, response)


@router.post("/{user_id}/custom-roles")
def grant_custom_role(
    user_id: UUID, body: CustomRoleBody, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Grant a custom role (``POST /roles``): only someone above both the user and the
    role's level may."""
    return run(crm, GrantCustomRole(user_id=user_id, **body.model_dump()), ctx, response)


@router.delete("/{user_id}/custom-roles/{role_id}", dependencies=NO_FIELDS)
def revoke_custom_role(
    user_id: UUID, role_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, RevokeCustomRole(user_id=user_id, role_id=role_id), ctx, response)


@router.post("/{user_id}/deactivation", dependencies=NO_FIELDS)
def deactivate_user(user_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response) -> Receipt:
    return run(crm, DeactivateUser(user_id=user_id), ctx, response)


@router.put("/{user_id}/manager")
def assign_manager(
    user_id: UUID, body: ManagerBody, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Whom the user reports to (null: nobody). A manager's team is everyone who reports
    to them, however indirectly; the permission table's ``team`` scope reaches their
    records. Set by someone above the user."""
    return run(crm, AssignManager(user_id=user_id, **body.model_dump()), ctx, response)


@router.post("/{user_id}/tokens", status_code=201)
def issue_token(
    user_id: UUID, body: TokenRequest, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    """Issue an API token; ``shown_once.token`` is never shown again."""
    return run(crm, IssueToken(user_id=user_id, **body.model_dump()), ctx, response)


@router.post("/{user_id}/tokens/{token_id}/rotation", status_code=201)
def rotate_token(
    user_id: UUID,
    token_id: UUID,
    body: RotationRequest,
    crm: CrmDep,
    ctx: ContextDep,
    response: Response,
) -> Receipt:
    """Replace a token: a new one is issued (``shown_once.token``, with
    ``created.token_id``) and the old one revoked, in one change."""
    return run(
        crm, RotateToken(user_id=user_id, token_id=token_id, **body.model_dump()), ctx, response
    )


@router.delete("/{user_id}/tokens/{token_id}", dependencies=NO_FIELDS)
def revoke_token(
    user_id: UUID, token_id: UUID, crm: CrmDep, ctx: ContextDep, response: Response
) -> Receipt:
    return run(crm, RevokeToken(user_id=user_id, token_id=token_id), ctx, response)
