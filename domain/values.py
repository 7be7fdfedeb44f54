"""Value objects and checks shared by several aggregates."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from domain.currencies import ISO_4217
from domain.errors import InvalidValueError

#: Namespace for ids derived from natural keys (uuid5), such as e-mail indexes.
CRM_NAMESPACE = uuid.UUID("5b0f4d8e-6d0b-4a43-9d3a-6f3a1d5e2c11")

MAX_AMOUNT = Decimal("1e15")
MAX_AMOUNT_DECIMALS = 4
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class Direction(Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class Money:
    """An amount in one ISO 4217 currency. Never a float."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        check_amount(self.amount)
        check_currency(self.currency)


def check_amount(amount: Decimal) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidValueError(f"amount must be a finite decimal, not {amount!r}")
    if amount < 0:
        raise InvalidValueError(f"amount must not be negative, not {amount}")
    if amount >= MAX_AMOUNT:
        raise InvalidValueError(f"amount must be below {MAX_AMOUNT:,.0f}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_AMOUNT_DECIMALS:
        raise InvalidValueError(f"amount has more than {MAX_AMOUNT_DECIMALS} decimal places")


def check_currency(currency: str) -> None:
    if currency not in ISO_4217:
        raise InvalidValueError(f"{currency!r} is not an ISO 4217 currency code")


def check_country(country: str | None) -> None:
    if country is not None and not _COUNTRY.match(country):
        raise InvalidValueError(f"country must be an ISO 3166 alpha-2 code, not {country!r}")


def normalize_email(email: str) -> str:
    """The form under which an e-mail address is unique: trimmed and lower-cased."""
    normalized = email.strip().lower()
    if not _EMAIL.match(normalized):
        raise InvalidValueError(f"{email!r} is not an e-mail address")
    return normalized


def check_name(name: str, what: str = "name", max_length: int = 200) -> str:
    stripped = name.strip()
    if not stripped:
        raise InvalidValueError(f"{what} must not be empty")
    if len(stripped) > max_length:
        raise InvalidValueError(f"{what} must be at most {max_length} characters")
    return stripped


def key_id(scope: str, key: str) -> uuid.UUID:
    """The id of an index aggregate for a natural key within a scope."""
    return uuid.uuid5(CRM_NAMESPACE, f"{scope}:{key}")


def keyed_key_id(secret: bytes, scope: str, key: str) -> uuid.UUID:
    """The id of an index aggregate whose key must not be confirmable from its id (a
    contact's e-mail address): HMAC-SHA256 of scope and key under ``secret``, its first
    16 bytes as a version-8 UUID (RFC 9562). Without the secret, a guessed key cannot
    be turned into the id, as :func:`key_id`'s uuid5 can."""
    digest = hmac.new(secret, f"{scope}:{key}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:16], "big")
    value &= ~(0xF000 << 64) & ~(0xC000 << 48)  # clear the version and variant bits
    value |= (8 << 76) | (0x8000 << 48)  # version 8, RFC 4122/9562 variant
    return uuid.UUID(int=value)


MAX_REMOVAL_REASON = 1000


class Removable:
    """A record that can be removed for good (an account, a contact, a deal): its own
    ``Removed`` event sets ``removed``, and every later change is refused by its
    ``check_not_removed``. The class default also serves snapshots taken before records
    could be removed."""

    removed = False

    def check_not_removed(self) -> None:
        raise NotImplementedError  # each record raises its own error


def check_removal_reason(reason: str) -> str:
    """Why a record was removed: optional, at most 1000 characters."""
    reason = reason.strip()
    if len(reason) > MAX_REMOVAL_REASON:
        raise InvalidValueError(f"a reason has at most {MAX_REMOVAL_REASON} characters")
    return reason
