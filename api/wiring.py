"""The composition root: builds the application from settings."""

from __future__ import annotations

from api.settings import Settings
from commands.app import Crm, store_env


def build_crm(settings: Settings) -> Crm:
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = store_env(settings.database_url, str(settings.sqlite_path), settings.pg_pool_size)
    return Crm(env=env)
