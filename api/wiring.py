"""The composition root: builds the application from settings."""

from __future__ import annotations

from api.settings import Settings
from commands.app import Crm, store_env
from projections.host import ReadModels


def build_crm(settings: Settings) -> Crm:
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Crm(env=crm_env(settings), group_commit=settings.group_commit)


def crm_env(settings: Settings) -> dict[str, str]:
    """The store's settings for eventsourcing (also for opening it in other processes)."""
    return store_env(settings.database_url, str(settings.sqlite_path), settings.pg_pool_size)


def build_read_models(crm: Crm, settings: Settings, in_memory: bool = False) -> ReadModels:
    """The read models in ``settings.read_dir`` (or in memory), fed from ``crm``'s store."""
    return ReadModels(
        crm.recorder,
        None if in_memory else settings.read_dir,
        batch_size=settings.projection_batch_size,
        poll_interval=settings.projection_poll_seconds,
    )
