"""``crm erase-contact ID``: GDPR erasure of a contact from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli_common import app, out, system_context
from api.cli_records import dumps, parse_id, store
from api.subject_access import subject_access
from commands.contacts import EraseContact
from commands.handlers import execute
from replay.as_of import read_models_as_of


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


@app.command("subject-access")
def subject_access_command(
    contact_id: Annotated[str, typer.Argument(help="the contact's id")],
) -> None:
    """Everything held about a contact, as JSON (GDPR subject access); its audit rows
    come from the audit log built from the store as it stands."""
    with store() as crm:
        audit_log = read_models_as_of(crm.recorder, crm.position(), ["audit"])
        try:
            document = subject_access(crm, parse_id(contact_id), audit_log.store.reader())
        finally:
            audit_log.store.close()
    print(dumps(document))
