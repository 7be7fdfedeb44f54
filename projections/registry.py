"""Every read model, by name: what `crm serve`, `crm project` and `crm rebuild` run."""

from __future__ import annotations

from collections.abc import Callable

from projections.audit import AuditLog
from projections.projector import Projector

PROJECTORS: dict[str, Callable[[], Projector]] = {
    AuditLog.name: AuditLog,
}


def all_projectors() -> list[Projector]:
    return [make() for make in PROJECTORS.values()]
