"""Recording refused attempts (``domain/denial.py``) where auditors find them: the audit
log (``GET /audit?action=Denial.Recorded``)."""

from __future__ import annotations

from uuid import UUID

from commands.app import Crm
from commands.persistence import Meta
from domain.denial import Denial
from domain.errors import NotPermittedError
from domain.permissions import DeniedError

#: A refusal's reason is cut to this many characters.
MAX_REASON = 500


def record_denial(
    crm: Crm, error: NotPermittedError, actor_id: UUID, request_id: str, operation: str
) -> Denial:
    """Save one refusal of ``actor_id``, in a transaction of its own (the refused
    command wrote nothing)."""
    denied = error if isinstance(error, DeniedError) else None
    denial = Denial(
        resource=denied.resource.value if denied else None,
        action=denied.action.value if denied else None,
        target_id=denied.target if denied else None,
        operation=operation[:200],
        refusal=type(error).__name__,
        reason=str(error)[:MAX_REASON],
    )
    crm.save_with(Meta(actor=actor_id.hex, request_id=request_id, source="api"), denial)
    return denial
