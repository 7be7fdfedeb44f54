"""Dependencies of the routes: the application, the acting user, their authority (roles
and team, built once per request), the command context."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from api.ratelimit import TokenBuckets
from commands.app import Crm
from commands.context import Context
from commands.errors import UnauthenticatedError
from commands.idempotency import MAX_KEY_LENGTH
from commands.tokens import authenticate, token_id_of
from commands.users import authority_of
from domain.errors import InvalidValueError
from domain.permissions import Action, Resource, visible_owners
from domain.roles import Authority
from domain.user import User

# The headers' rules are in the OpenAPI schema too (so clients and schema-driven tests
# know them): FastAPI refuses a value that breaks them with a 422 problem.
IF_MATCH_PATTERN = r'^(?:W/)?"?([0-9]{1,18})"?$'
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"
_ETAG = re.compile(IF_MATCH_PATTERN)


def get_crm(request: Request) -> Crm:
    crm: Crm = request.app.state.crm
    return crm


CrmDep = Annotated[Crm, Depends(get_crm)]


def current_user(
    request: Request,
    crm: CrmDep,
    authorization: Annotated[str | None, Header()] = None,
) -> User:
    if not authorization:
        raise UnauthenticatedError("send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("send Authorization: Bearer <token>")
    user = authenticate(crm, token.strip())
    request.state.token_id = token_id_of(token.strip())
    return user


UserDep = Annotated[User, Depends(current_user)]


def current_authority(crm: CrmDep, user: UserDep) -> Authority:
    """The caller's roles and team: what the permission table checks, for reads and
    commands alike (FastAPI builds it once per request, however many use it)."""
    return authority_of(crm, user)


AuthorityDep = Annotated[Authority, Depends(current_authority)]


#: The owners whose records the caller may read: ``None`` for every owner.
ReadScope = frozenset[uuid.UUID] | None


def read_scope(resource: Resource) -> Callable[[Authority], ReadScope]:
    """A dependency: the owners whose ``resource`` records the caller may read, from the
    permission table."""

    def dependency(actor: AuthorityDep) -> ReadScope:
        return visible_owners(actor, resource, Action.READ)

    return dependency


AccountScope = Annotated[ReadScope, Depends(read_scope(Resource.ACCOUNT))]
ContactScope = Annotated[ReadScope, Depends(read_scope(Resource.CONTACT))]
DealScope = Annotated[ReadScope, Depends(read_scope(Resource.DEAL))]
InteractionScope = Annotated[ReadScope, Depends(read_scope(Resource.INTERACTION))]
AuditScope = Annotated[ReadScope, Depends(read_scope(Resource.AUDIT))]
AnalyticsScope = Annotated[ReadScope, Depends(read_scope(Resource.ANALYTICS))]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise InvalidValueError('If-Match takes the version from the ETag, e.g. "3"')
    return int(match[1])


def command_context(
    request: Request,
    actor: AuthorityDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description="makes a retry safe: the same key and body answer the first reply",
        ),
    ] = None,
    if_match: Annotated[
        str | None,
        Header(pattern=IF_MATCH_PATTERN, description='only if at this version (ETag), e.g. "3"'),
    ] = None,
    x_request_id: Annotated[
        str | None,
        Header(pattern=REQUEST_ID_PATTERN, description="recorded with the events"),
    ] = None,
) -> Context:
    # Every command goes through here: each user's writes are limited (429) before
    # anything is decided. Keyed by the user, not the token: all of a user's tokens
    # share one allowance, so minting a fresh token does not refill it.
    limits: TokenBuckets = request.app.state.write_limits
    limits.take(str(actor.user_id))
    return Context(
        actor=actor,
        source="api",
        request_id=x_request_id or uuid.uuid4().hex,
        idempotency_key=idempotency_key,
        expected_version=parse_if_match(if_match),
    )


ContextDep = Annotated[Context, Depends(command_context)]
