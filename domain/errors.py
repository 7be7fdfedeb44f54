"""The families of domain errors. Each aggregate module subclasses these.

The family tells the outside world what kind of refusal it is: a value that can
never be valid, a rule that the current state forbids, or an actor who may not
do this.
"""

from __future__ import annotations


class DomainError(Exception):
    """Raised when a command would break a rule of the CRM."""


class InvalidValueError(DomainError, ValueError):
    """Raised when a value can never be valid (a negative amount, an unknown currency)."""


class StateConflictError(DomainError):
    """Raised when the record's current state forbids the change (a closed deal moved)."""


class NotPermittedError(DomainError):
    """Raised when the acting user may not make the change."""


class RecordRemovedError(StateConflictError):
    """Raised when a removed record (an account, contact or deal) would be changed."""
