"""The short, human summary of each timeline entry, made from an event's payload.

Pure functions of their arguments: a summary is written once, when its event is
projected, with the names known at that moment ("Moved from Lead to Proposal").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.interaction import InteractionKind

MAX_EXCERPT = 100

LABELS: dict[str, str] = {
    InteractionKind.CALL.value: "Call",
    InteractionKind.EMAIL.value: "E-mail",
    InteractionKind.MEETING.value: "Meeting",
    InteractionKind.NOTE.value: "Note",
    InteractionKind.SMS.value: "SMS",
}


def excerpt(text: str) -> str:
    """The first non-empty line of ``text``, cut to ``MAX_EXCERPT`` characters."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= MAX_EXCERPT else line[: MAX_EXCERPT - 1].rstrip() + "…"


def duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def interaction(kind: str, details: Mapping[str, Any]) -> str:
    """``Outbound call, 4 min 10 s, connected`` · ``Inbound e-mail: Renewal`` · …"""
    if kind == InteractionKind.CALL.value:
        outcome = str(details["outcome"]).replace("_", " ")
        return (
            f"{str(details['direction']).capitalize()} call, "
            f"{duration(int(details['duration_seconds']))}, {outcome}"
        )
    if kind == InteractionKind.EMAIL.value:
        subject = excerpt(details["subject"]) or "(no subject)"
        return f"{str(details['direction']).capitalize()} e-mail: {subject}"
    if kind == InteractionKind.MEETING.value:
        title = excerpt(details["title"])
        return f"Meeting: {title}" if title else "Meeting"
    if kind == InteractionKind.SMS.value:
        return f"{str(details['direction']).capitalize()} SMS: {excerpt(details['body'])}"
    return f"Note: {excerpt(details['body'])}"


def field_label(field: str) -> str:
    return field.replace("_ids", "s").replace("_id", "").replace("_", " ")


#: The order corrected fields are named in: when, who and what it is about, then details.
FIELD_ORDER = ("occurred_at", "contact_ids", "account_id", "deal_id")


def correction(kind: str, fields: Sequence[str]) -> str:
    ordered = [f for f in FIELD_ORDER if f in fields] + sorted(set(fields) - set(FIELD_ORDER))
    return f"{LABELS[kind]} corrected: {', '.join(field_label(f) for f in ordered)}"


def retraction(kind: str, reason: str) -> str:
    return f"{LABELS[kind]} retracted: {excerpt(reason)}"


def details_changed(name_before: str | None, name_after: str, others: Sequence[str]) -> str:
    """``Renamed from Acme to Acme Ltd; also changed website`` · ``Changed phones``."""
    changed = ", ".join(field_label(f) for f in others)
    if name_before is not None and name_before != name_after:
        renamed = f"Renamed from {name_before} to {name_after}"
        return f"{renamed}; also changed {changed}" if changed else renamed
    return f"Changed {changed}" if changed else "Details changed"


def from_to(what: str, before: Any, after: Any) -> str:
    """``Expected close date changed from none to 2024-06-30``."""
    return f"{what} changed from {'none' if before is None else before} to " + (
        "none" if after is None else str(after)
    )


def listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"
