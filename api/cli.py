"""The ``crm`` command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from api.settings import Settings
from api.wiring import build_crm
from commands.context import Context
from commands.errors import CommandError
from commands.handlers import execute
from commands.users import USER_EMAIL_SCOPE, InviteUser, IssueToken
from domain.errors import DomainError
from domain.index import UniqueKey
from domain.roles import Authority, Role
from domain.user import OwnerRoster, roster_id
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


@app.command()
def init(
    email: Annotated[str, typer.Option(help="e-mail of the first Owner")] = "owner@example.com",
    name: Annotated[str, typer.Option(help="name of the first Owner")] = "Owner",
) -> None:
    """Create the event store and the first Owner; print the Owner's API token once."""
    settings = Settings()
    try:
        crm = build_crm(settings)
    except Exception as error:
        raise fail(f"cannot open the event store ({settings.store_description}): {error}") from None
    try:
        roster = crm.find(OwnerRoster, roster_id())
        if roster is not None and roster.owners:
            raise fail(
                f"already initialised ({settings.store_description}); "
                "use `crm token EMAIL` to issue a token for an existing user"
            )
        command = InviteUser(email=email, name=name, role=Role.OWNER)
        receipt = execute(crm, command, system_context())
    except (DomainError, CommandError, ValueError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    out.print(f"Initialised {settings.store_description}")
    out.print(f"Owner {normalize_email(email)} has id {receipt.id}")
    out.print("API token (shown once, store it now):")
    print(receipt.shown_once["token"])


@app.command()
def token(
    email: Annotated[str, typer.Argument(help="e-mail of an existing user")],
    label: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Issue a new API token for a user (operator recovery); printed once."""
    crm = build_crm(Settings())
    try:
        key = crm.find(UniqueKey, key_id(USER_EMAIL_SCOPE, normalize_email(email)))
        if key is None or key.holder_id is None:
            raise fail(f"no user with e-mail {email}")
        receipt = execute(crm, IssueToken(user_id=key.holder_id, label=label), system_context())
    except (DomainError, CommandError, ValueError) as error:
        raise fail(str(error)) from None
    finally:
        crm.close()
    print(receipt.shown_once["token"])


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default CRM_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default CRM_PORT or 8000")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    out.print(f"Chronicle CRM on {settings.store_description}")
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


def main() -> None:
    app()
