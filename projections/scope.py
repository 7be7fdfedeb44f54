"""Read scope pushed into the queries: a query function takes ``owners``, the owners
whose rows the reader may see (``None``: every row; an empty collection: none), and
adds one condition to its ``WHERE`` (see :func:`domain.permissions.visible_owners`)."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

#: The owners whose rows a reader may see; ``None`` for every row.
Owners = Collection[UUID] | None


def owner_values(owners: Owners) -> list[str] | None:
    """The query parameter for :func:`owned_by`: ``None`` when nothing is filtered."""
    return None if owners is None else sorted(str(owner) for owner in owners)


def owned_by(column: str, param: str = "?", cast: str = "UUID") -> str:
    """``column`` is one of the owners passed as ``param`` (a list from
    :func:`owner_values`; an empty one keeps no row)."""
    return f"{column} IN (SELECT unnest(CAST({param} AS {cast}[])))"
