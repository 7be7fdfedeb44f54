"""What every ``crm`` command shares: the Typer app, the consoles, one-line failures,
progress bars and row printing. Commands live in ``api/cli.py`` and in the
``api/cli_*.py`` modules it imports (each registers its own commands on :data:`app`)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from api.settings import Settings
from api.wiring import build_crm
from commands.app import Crm
from commands.context import Context
from commands.users import USER_EMAIL_SCOPE, authority_of
from domain.index import UniqueKey
from domain.roles import Authority
from domain.user import User
from domain.values import key_id, normalize_email

app = typer.Typer(
    help="Chronicle CRM: an event-sourced CRM core. Every change is an immutable event.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def system_context() -> Context:
    return Context(actor=Authority.system(), source="cli")


def user_by_email(crm: Crm, email: str) -> User:
    key = crm.find(UniqueKey, key_id(USER_EMAIL_SCOPE, normalize_email(email)))
    if key is None or key.holder_id is None:
        raise fail(f"no user with e-mail {email}")
    return crm.load(User, key.holder_id)


AsUserOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        "--user",
        metavar="EMAIL",
        help="see only what this user may read (by the permission table); "
        "default: the operator, who sees everything",
    ),
]


def reader_as(email: str | None) -> Authority:
    """Whose read scope a command applies: the user with this e-mail (active), or
    without one the operator at the command line (the system authority)."""
    if email is None:
        return Authority.system()
    crm = build_crm(Settings())
    try:
        user = user_by_email(crm, email)
        if not user.active:
            raise fail(f"{email} is deactivated")
        return authority_of(crm, user)
    finally:
        crm.close()


#: ``crm replay …``: records and read models as they stood at a moment.
replay_app = typer.Typer(
    help="Any record, or a read model, as it stood at a moment or version.",
    no_args_is_help=True,
)
app.add_typer(replay_app, name="replay")


class EventRate(ProgressColumn):
    """Events per second (positions per second: close to events, gaps aside), or
    another unit per second."""

    def __init__(self, unit: str = "events") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        text = f"{speed:,.0f} {self.unit}/s" if speed else f"… {self.unit}/s"
        return Text(text, style="cyan")


@contextmanager
def progress_bar(
    description: str, transient: bool = False, unit: str = "events"
) -> Iterator[Progress]:
    """A progress bar on stderr (rate in ``unit`` per second); a transient one is
    cleared when done."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        EventRate(unit),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=transient) as progress:
        yield progress


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def print_rows(names: list[str], rows: list[tuple[object, ...]], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        records = [dict(zip(names, r, strict=True)) for r in rows]
        try:
            text = orjson.dumps(records, default=str, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as error:
            raise fail(f"cannot write the rows as JSON ({error}); try --format csv") from None
        print(text.decode())
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        table = Table(*names)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
