"""Every read model, by name: what `crm serve`, `crm project` and `crm rebuild` run."""

from __future__ import annotations

from collections.abc import Callable

from projections.analytics import Analytics
from projections.audit import AuditLog
from projections.board import Board
from projections.directory import Directory
from projections.projector import Projector
from projections.timeline import Timeline

PROJECTORS: dict[str, Callable[[], Projector]] = {
    AuditLog.name: AuditLog,
    Board.name: Board,
    Timeline.name: Timeline,
    Directory.name: Directory,
    Analytics.name: Analytics,
}


def all_projectors() -> list[Projector]:
    return [make() for make in PROJECTORS.values()]
