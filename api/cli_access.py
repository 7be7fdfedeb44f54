"""``crm replay access <kind> <id> --at T``: who could read or change a record then."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from api.cli_common import out, replay_app
from api.cli_records import MOMENT_HELP, dumps, parse_id, parse_moment, store
from api.routes.access import AccessPublic
from api.schemas import RECORD_KINDS
from replay.access import access_as_of

Kind = StrEnum("Kind", {kind: kind for kind in RECORD_KINDS})  # type: ignore[misc]


@replay_app.command("access")
def access_command(
    kind: Annotated[Kind, typer.Argument(help="the kind of record")],
    record_id: Annotated[str, typer.Argument(help="the record's id (a UUID)")],
    at: Annotated[str, typer.Option("--at", help=MOMENT_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON, not a table")] = False,
) -> None:
    """Who could read or change the record at --at, from the users' own events."""
    identifier = parse_id(record_id)
    moment = parse_moment(at, "--at")
    with store() as crm:
        report = access_as_of(crm, RECORD_KINDS[kind.value], identifier, moment)
    shown = AccessPublic.of(report)
    if as_json:
        print(shown.model_dump_json(indent=2))
        return
    state = "did not exist yet" if report.version is None else f"at version {report.version}"
    table = Table(
        "user", "roles", "read", "change", "why not",
        title=f"{report.kind} {identifier} {state}, {moment.isoformat()}",
    )  # fmt: skip
    for user in shown.users:
        table.add_row(
            f"{user.email}{' (owner)' if user.owner else ''}",
            dumps([r.value for r in user.roles]),
            "yes" if user.could_read else "no",
            "yes" if user.could_change else "no",
            user.reason or "",
        )
    out.print(table)
