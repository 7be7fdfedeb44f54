"""Opaque cursors for keyset pagination (``?after=<cursor>&limit=…``).

A cursor is the sort key of the last row of a page, as URL-safe base64 of a JSON
list. A cursor that does not decode, or has the wrong shape, is a 422 — never a 500.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from domain.errors import InvalidValueError

MAX_CURSOR_LENGTH = 1024


def encode_cursor(*key: str | int | float | None) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The key in ``cursor``, checked against the expected ``types`` (``None`` allowed)."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidValueError("after: not a cursor this endpoint returned") from None
    if not isinstance(key, list) or len(key) != len(types):
        raise InvalidValueError("after: not a cursor this endpoint returned")
    for value, expected in zip(key, types, strict=True):
        if value is not None and not (
            isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        ):
            raise InvalidValueError("after: not a cursor this endpoint returned")
    return key
