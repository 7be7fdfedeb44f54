"""API tokens: ``crm_<user id>_<token id>_<secret>``. Only a SHA-256 of the secret is
stored (in the user's events); the secret is 256 random bits, so a fast hash is enough."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from commands.app import Crm
from commands.errors import NotFoundError, UnauthenticatedError
from domain.user import User

_TOKEN = re.compile(r"^crm_([0-9a-f]{32})_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    token_id: UUID
    plaintext: str
    token_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(user_id: UUID) -> NewToken:
    token_id = uuid4()
    secret = secrets.token_urlsafe(32)
    return NewToken(
        token_id=token_id,
        plaintext=f"crm_{user_id.hex}_{token_id.hex}_{secret}",
        token_hash=hash_secret(secret),
    )


def token_id_of(token: str) -> UUID | None:
    """The id of a well-formed token (not a proof that it is valid)."""
    match = _TOKEN.match(token)
    return UUID(match[2]) if match else None


def user_id_of(token: str) -> UUID | None:
    """The user id a well-formed token names (not a proof that it is valid)."""
    match = _TOKEN.match(token)
    return UUID(match[1]) if match else None


def authenticate(crm: Crm, token: str) -> User:
    """The active user a token belongs to, or :class:`UnauthenticatedError`."""
    match = _TOKEN.match(token)
    if match is None:
        raise UnauthenticatedError("malformed token")
    user_id, token_id, secret = UUID(match[1]), UUID(match[2]), match[3]
    try:
        user = crm.load(User, user_id)
    except NotFoundError:
        raise UnauthenticatedError("unknown token") from None
    stored = user.tokens.get(str(token_id))
    # Compare even when the token id is unknown, so timing tells nothing.
    if not hmac.compare_digest(stored or "0" * 64, hash_secret(secret)) or stored is None:
        raise UnauthenticatedError("unknown or revoked token")
    if user.token_hash(token_id, datetime.now(UTC)) is None:
        raise UnauthenticatedError("token expired")
    if not user.active:
        raise UnauthenticatedError("user is deactivated")
    return user
