"""Read scope pushed into the queries: a query function takes ``owners``, the owners
whose rows the reader may see (``None``: every row; an empty collection: none), and
adds one condition to its ``WHERE`` (see :func:`domain.permissions.visible_owners`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

from domain.permissions import Action, Resource, visible_owners
from domain.roles import Authority

#: The owners whose rows a reader may see; ``None`` for every row.
Owners = Collection[UUID] | None


def owner_values(owners: Owners) -> list[str] | None:
    """The query parameter for :func:`owned_by`: ``None`` when nothing is filtered."""
    return None if owners is None else sorted(str(owner) for owner in owners)


def owned_by(column: str, param: str = "?", cast: str = "UUID") -> str:
    """``column`` is one of the owners passed as ``param`` (a list from
    :func:`owner_values`; an empty one keeps no row)."""
    return f"{column} IN (SELECT unnest(CAST({param} AS {cast}[])))"


# -- whole tables, for analysts' sessions (``crm sql --as``, ``crm export --as``) -------

#: Per read-model table: the resource its rows are records of, and the column naming
#: their owner (with its type). A table whose rows name no owner (``None``) shows only to
#: a reader with an ``all`` scope on its resource; a table left out of this mapping shows
#: only to the operator.
TABLE_SCOPES: Mapping[str, tuple[Resource, str | None, str]] = {
    "directory_accounts": (Resource.ACCOUNT, "owner_id", "UUID"),
    "directory_contacts": (Resource.CONTACT, "owner_id", "UUID"),
    "directory_deals": (Resource.DEAL, None, "UUID"),
    "board_pipelines": (Resource.PIPELINE, None, "UUID"),
    "board_stages": (Resource.PIPELINE, None, "UUID"),
    "board_accounts": (Resource.ACCOUNT, None, "UUID"),
    "board_deals": (Resource.DEAL, "owner_id", "UUID"),
    "board_closed_deals": (Resource.DEAL, "owner_id", "UUID"),
    "board_totals": (Resource.DEAL, "owner_id", "UUID"),
    "board_interactions": (Resource.INTERACTION, None, "UUID"),
    "analytics_transitions": (Resource.ANALYTICS, "owner_id", "UUID"),
    "analytics_deals": (Resource.ANALYTICS, "owner_id", "UUID"),
    "analytics_stages": (Resource.PIPELINE, None, "UUID"),
    "analytics_interactions": (Resource.ANALYTICS, "user_id", "VARCHAR"),
    "audit_log": (Resource.AUDIT, "actor", "VARCHAR"),
    "audit_state": (Resource.AUDIT, None, "UUID"),
    # A timeline mixes records of every kind: only for those who read them all.
    "timeline": (Resource.INTERACTION, None, "UUID"),
    "timeline_records": (Resource.INTERACTION, None, "UUID"),
    "timeline_sources": (Resource.INTERACTION, None, "UUID"),
    "timeline_removed": (Resource.INTERACTION, None, "UUID"),
}

#: Bookkeeping every reader may see: how far each read model is.
UNSCOPED = frozenset({"projection_positions", "kafka_offsets"})


def row_filter(table: str, actor: Authority) -> tuple[str, list[Any]] | None:
    """The condition that keeps the rows of ``table`` that ``actor`` may read, with its
    parameters; ``None`` when every row is theirs to read."""
    if actor.is_system or table in UNSCOPED:
        return None
    if table not in TABLE_SCOPES:
        return "FALSE", []
    resource, column, cast = TABLE_SCOPES[table]
    owners = visible_owners(actor, resource, Action.READ)
    if owners is None:
        return None
    if column is None:
        return "FALSE", []
    return owned_by(f'"{column}"', cast=cast), [owner_values(owners)]
