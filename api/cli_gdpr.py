"""``crm erase-contact ID``: GDPR erasure of a contact from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli_common import app, out, system_context
from api.cli_records import parse_id, store
from commands.contacts import EraseContact
from commands.handlers import execute


@app.command("erase-contact")
def erase_contact(
    contact_id: Annotated[str, typer.Argument(help="the contact's id")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "",
) -> None:
    """Erase a contact's personal data for good (GDPR): its key is destroyed with a
    Contact.Erased event; its fields read as [erased] everywhere from then on."""
    with store() as crm:
        receipt = execute(
            crm, EraseContact(contact_id=parse_id(contact_id), reason=reason), system_context()
        )
        crm.shred_snapshots([receipt.id])
    out.print(
        f"Erased contact {receipt.id} (version {receipt.version}, position {receipt.position})"
    )
