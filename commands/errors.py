"""Errors of the write side that are not domain rules (those live in ``domain``)."""

from __future__ import annotations

from uuid import UUID


class CommandError(Exception):
    """Raised when a command cannot be carried out for a reason outside the domain rules."""


class NotFoundError(CommandError):
    """Raised when a command or a read names a record that does not exist."""

    def __init__(self, kind: str, record_id: UUID) -> None:
        super().__init__(f"no {kind} with id {record_id}")
        self.kind = kind
        self.record_id = record_id


class ConflictError(CommandError):
    """Raised when the record changed since the version the client expected, or a
    concurrent writer got there first. Nothing was written."""


class UnsealedHistoryError(ConflictError):
    """Raised when a contact to erase has personal fields stored in plain (events from
    before sealing existed), which destroying its key cannot erase."""


class ErasedRequestError(ConflictError):
    """Raised when an Idempotency-Key comes back for a request about a contact since
    erased: its sealed fingerprint no longer opens, so the retry cannot be matched."""


class IdempotencyKeyReusedError(CommandError):
    """Raised when an Idempotency-Key is sent again with a different command."""


class UnauthenticatedError(CommandError):
    """Raised when a request carries no valid token of an active user."""


class StoreUnavailableError(CommandError):
    """Raised when the event store cannot be reached."""


class UnknownReferenceError(NotFoundError):
    """Raised when a command's body refers to a record that does not exist."""
