"""``crm replay <kind> <id>``: a record as it stood at a moment or a version, and
``crm history <kind> <id>``: every event of a record with field-level before/after."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from uuid import UUID

import orjson
import typer
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InterfaceError, OperationalError
from rich.table import Column, Table

from api.cli_common import AsUserOption, app, fail, out, reader_as, replay_app
from api.schemas import RECORD_KINDS, HistoryEntryPublic, public, public_json
from api.settings import Settings
from api.wiring import build_crm
from commands.app import Crm
from commands.errors import CommandError
from domain.errors import DomainError
from domain.ownership import check_readable
from replay.records import RecordNotFoundError, iter_history, record_as_of

MOMENT_HELP = (
    "the record as recorded by this moment: ISO 8601 with a time zone "
    "(2026-09-30T18:00:00+02:00, 2026-09-30T16:00Z); a date alone (2026-09-30) means "
    "the end of that day in UTC, so everything recorded on that day counts"
)


def parse_moment(text: str, option: str = "--as-of") -> datetime:
    """A moment with a time zone; a date alone is the last instant of that day in UTC.
    (Every ``crm replay`` command reads moments so, as HTTP does: no zone, no guess.)"""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2026-09-30T18:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise fail(f"{option} {text!r} has no time zone; add one (Z for UTC, or e.g. +02:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise fail(f"{option} {text!r} is outside what UTC can hold") from None


def parse_id(text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise fail(f"{text!r} is not an id (a UUID) of a record") from None


def parse_version(text: str) -> int:
    try:
        version = int(text.strip())
    except ValueError:
        raise fail(f"--version takes a whole number, not {text!r}") from None
    if version < 1:
        raise fail("versions start at 1")
    return version


@contextmanager
def store() -> Iterator[Crm]:
    """The event store, with every refusal or store failure as a one-line error."""
    settings = Settings()
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        yield crm
    except (
        DomainError,
        CommandError,
        RecordNotFoundError,
        OperationalError,
        InterfaceError,
    ) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- crm replay <kind> <id> ---------------------------------------------------------------


def replay_command(kind: str, cls: type[Aggregate]) -> Callable[..., None]:
    def replay_record(
        record_id: Annotated[str, typer.Argument(help="the record's id (a UUID)")],
        as_of: Annotated[str | None, typer.Option("--as-of", help=MOMENT_HELP)] = None,
        version: Annotated[
            str | None, typer.Option("--version", metavar="N", help="the record at version N")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON, not a table")] = False,
        as_user: AsUserOption = None,
    ) -> None:
        if as_of is not None and version is not None:
            raise fail("give --as-of or --version, not both")
        identifier = parse_id(record_id)
        moment = parse_moment(as_of) if as_of is not None else None
        number = parse_version(version) if version is not None else None
        reader = reader_as(as_user)
        with store() as crm:
            if not reader.is_system:
                check_readable(reader, crm.load(cls, identifier))
            record = record_as_of(crm, cls, identifier, moment=moment, version=number)
            shown = public(record)
        if as_json:
            print(shown.model_dump_json(indent=2))
            return
        table = Table("field", "value", title=f"{kind} {identifier} at version {record.version}")
        for field, value in shown.model_dump(mode="json").items():
            table.add_row(field, value if isinstance(value, str) else dumps(value))
        out.print(table)

    replay_record.__doc__ = (
        f"The {kind} as it stood: now, as recorded by --as-of, or at --version "
        "(a date alone is the end of that day in UTC)."
    )
    return replay_record


for _kind, _cls in RECORD_KINDS.items():
    replay_app.command(_kind)(replay_command(_kind, _cls))


# -- crm history <kind> <id> --------------------------------------------------------------


@app.command("history")
def history_command(
    kind: Annotated[str, typer.Argument(help="the kind of record: " + ", ".join(RECORD_KINDS))],
    record_id: Annotated[str, typer.Argument(help="the record's id")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print a JSON array of the entries, not a table")
    ] = False,
    as_user: AsUserOption = None,
) -> None:
    """Every event of a record, oldest first: version, when it was recorded (and when it
    happened, where that differs), what, who, through what, and each field's
    before/after."""
    cls = RECORD_KINDS.get(kind.strip().lower())
    if cls is None:
        raise fail(f"no kind of record {kind!r}; there are: {', '.join(RECORD_KINDS)}")
    identifier = parse_id(record_id)
    reader = reader_as(as_user)
    with store() as crm:
        if not reader.is_system:
            check_readable(reader, crm.load(cls, identifier))
        found = iter_history(crm, cls, identifier, public_json)
        first = next(found)  # an unknown record fails here, before anything is printed
        entries = (HistoryEntryPublic(**vars(e)) for e in itertools.chain([first], found))
        if as_json:
            print_json_array(entry.model_dump(mode="json") for entry in entries)
        else:
            print_history_table(f"{kind} {identifier}", entries)


def print_json_array(items: Iterator[dict[str, Any]]) -> None:
    """One item per line as they come: a long history is never held whole."""
    print("[")
    separator = ""
    for item in items:
        print(separator + dumps(item), end="")
        separator = ",\n"
    print("\n]")


def print_history_table(title: str, entries: Iterator[HistoryEntryPublic]) -> None:
    """One row per event; times to the second in UTC (``--json`` has them in full)."""
    # Folded, never cut short with an ellipsis: an auditor reads every character.
    table = Table(
        Column("version", no_wrap=True),
        Column("recorded (UTC)", overflow="fold"),
        Column("action", no_wrap=True),
        *(Column(name, overflow="fold") for name in ("by", "changes")),
        title=title,
    )
    for entry in entries:
        when = utc(entry.recorded_at)
        if entry.occurred_at is not None:
            when += f"\nhappened {utc(entry.occurred_at)}"
        table.add_row(
            str(entry.version),
            when,
            entry.action,
            f"{entry.actor or ''}\nvia {entry.source or '?'}",
            "\n".join(
                f"{field}: {dumps(change['before'])} → {dumps(change['after'])}"
                for field, change in entry.changes.items()
            ),
        )
    out.print(table)


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
