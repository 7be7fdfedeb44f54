"""``crm permissions``: the permission table (``domain/permissions.py``) as Markdown, the
same text as the README's; ``--commands`` adds which row of it each command needs."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli_common import app, out
from commands.handlers import PERMITS
from domain.permissions import ACTIONS, PERMISSIONS


def permissions_markdown() -> str:
    """One row per resource and action, one column per built-in role: the scope each
    role reaches (all / team / own / none)."""
    roles = list(PERMISSIONS)
    lines = [
        "| resource | action | " + " | ".join(role.value for role in roles) + " |",
        "| --- | --- | " + " | ".join("---" for _ in roles) + " |",
    ]
    for resource, actions in ACTIONS.items():
        for action in actions:
            scopes = [PERMISSIONS[role][resource][action].value for role in roles]
            lines.append(f"| {resource.value} | {action.value} | " + " | ".join(scopes) + " |")
    return "\n".join(lines) + "\n"


def commands_markdown() -> str:
    """Each command and the row of the table it needs for every record it touches."""
    lines = ["| command | resource | action |", "| --- | --- | --- |"]
    for command, permit in PERMITS.items():
        resource, action = (
            (permit[0].value, permit[1].value) if permit else ("user", "levels (domain/roles.py)")
        )
        lines.append(f"| {command.__name__} | {resource} | {action} |")
    return "\n".join(lines) + "\n"


@app.command("permissions")
def permissions(
    commands: Annotated[
        bool, typer.Option("--commands", help="also list the table's row each command needs")
    ] = False,
) -> None:
    """Print the permission table: per resource and action, the scope each role reaches."""
    out.print(permissions_markdown(), end="", markup=False, highlight=False, soft_wrap=True)
    if commands:
        out.print()
        out.print(commands_markdown(), end="", markup=False, highlight=False, soft_wrap=True)
